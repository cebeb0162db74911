# Both tables bill per request (no capacity to plan), keep 35 days of
# point-in-time recovery, and drop items whose `ttl` (Unix seconds) has
# passed. The layout is the same one `airunner orchestrator init` creates.
#
# Encryption: DynamoDB encrypts every table at rest. With no KMS key given,
# enabled = false below means "the AWS owned key", not "unencrypted"; with
# dynamodb_kms_key_arn set, the tables use that customer managed key.

resource "aws_dynamodb_table" "jobs" {
  name         = var.jobs_table_name
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "job_id"

  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "job_id"
    type = "S"
  }

  attribute {
    name = "queue"
    type = "S"
  }

  # Unix milliseconds.
  attribute {
    name = "created_at"
    type = "N"
  }

  attribute {
    name = "request_id"
    type = "S"
  }

  # A queue's jobs by creation time, for listing jobs by queue.
  global_secondary_index {
    name            = "GSI1"
    hash_key        = "queue"
    range_key       = "created_at"
    projection_type = "ALL"
  }

  # Finds a job by its idempotency key (request_id); only jobs submitted
  # with one appear here.
  global_secondary_index {
    name            = "GSI2"
    hash_key        = "request_id"
    projection_type = "KEYS_ONLY"
  }

  # Finished jobs get a ttl (Unix seconds) and DynamoDB deletes them after it.
  ttl {
    attribute_name = "ttl"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = var.dynamodb_kms_key_arn != null
    kms_key_arn = var.dynamodb_kms_key_arn
  }

  tags = local.tags
}

resource "aws_dynamodb_table" "events" {
  name         = var.events_table_name
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "job_id"
  range_key    = "sequence"

  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "job_id"
    type = "S"
  }

  # Orders a job's events; a Query on job_id reads them back in order.
  attribute {
    name = "sequence"
    type = "N"
  }

  # Events get a ttl (Unix seconds; the orchestrator's --events-ttl, 30 days
  # by default).
  ttl {
    attribute_name = "ttl"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = var.dynamodb_kms_key_arn != null
    kms_key_arn = var.dynamodb_kms_key_arn
  }

  tags = local.tags
}
