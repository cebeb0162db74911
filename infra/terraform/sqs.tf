# One SQS standard queue per airunner queue, each with its own dead-letter
# queue. A message carries a job id; the job itself lives in DynamoDB.

resource "aws_sqs_queue" "dlq" {
  for_each = local.queue_names

  name                      = "${var.queue_prefix}${each.key}-dlq"
  message_retention_seconds = local.message_retention_seconds
  receive_wait_time_seconds = 20
  sqs_managed_sse_enabled   = true

  tags = merge(local.tags, { airunner_queue = each.key, airunner_dead_letter = "true" })

  lifecycle {
    precondition {
      condition     = length("${var.queue_prefix}${each.key}-dlq") <= 80
      error_message = "SQS queue names are at most 80 characters; shorten queue_prefix or the queue name \"${each.key}\"."
    }
  }
}

resource "aws_sqs_queue" "main" {
  for_each = local.queue_names

  name                       = "${var.queue_prefix}${each.key}"
  message_retention_seconds  = local.message_retention_seconds
  visibility_timeout_seconds = var.visibility_timeout_seconds
  receive_wait_time_seconds  = 20
  sqs_managed_sse_enabled    = true

  # maxReceiveCount counts every receive of one message. airunner sends a
  # fresh message for each attempt (a retry, a lost worker, a hand-back), so
  # a message reaches the dead-letter queue only when something keeps
  # returning it without airunner writing anything (see infra/README.md).
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dlq[each.key].arn
    maxReceiveCount     = var.max_receive_count
  })

  tags = merge(local.tags, { airunner_queue = each.key })
}

# Only the queue a dead-letter queue belongs to may use it as one. (A separate
# resource, because the queue and its dead-letter queue each name the other.)
resource "aws_sqs_queue_redrive_allow_policy" "dlq" {
  for_each = local.queue_names

  queue_url = aws_sqs_queue.dlq[each.key].id

  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.main[each.key].arn]
  })
}
