# What a running orchestrator may do, and nothing more: use the main queues
# and read and write the two tables. Creating or deleting queues and tables
# belongs to whoever runs terraform (or `airunner orchestrator init`), and the
# dead-letter queues are left to operators.

data "aws_iam_policy_document" "orchestrator" {
  statement {
    sid    = "UseJobQueues"
    effect = "Allow"
    actions = [
      "sqs:SendMessage",
      "sqs:ReceiveMessage",
      "sqs:DeleteMessage",
      "sqs:ChangeMessageVisibility",
      "sqs:GetQueueUrl",
      "sqs:GetQueueAttributes",
    ]
    resources = [for queue in aws_sqs_queue.main : queue.arn]
  }

  statement {
    sid    = "UseJobTables"
    effect = "Allow"
    actions = [
      # The orchestrator checks at start that both tables answer.
      "dynamodb:DescribeTable",
      "dynamodb:GetItem",
      "dynamodb:PutItem",
      "dynamodb:UpdateItem",
      "dynamodb:DeleteItem",
      "dynamodb:Query",
      "dynamodb:Scan",
      "dynamodb:BatchWriteItem",
      "dynamodb:BatchGetItem",
      "dynamodb:ConditionCheckItem",
    ]
    # DynamoDB authorizes TransactWriteItems and TransactGetItems by the
    # actions inside them, so these cover transactions too.
    resources = [
      aws_dynamodb_table.jobs.arn,
      "${aws_dynamodb_table.jobs.arn}/index/*",
      aws_dynamodb_table.events.arn,
      "${aws_dynamodb_table.events.arn}/index/*",
    ]
  }
}

resource "aws_iam_policy" "orchestrator" {
  name        = var.policy_name
  description = "airunner orchestrator: use the airunner SQS queues and DynamoDB tables"
  policy      = data.aws_iam_policy_document.orchestrator.json

  tags = local.tags
}

# Optional: a role that carries the policy, for ECS tasks, EC2 instances or
# any other AWS service principal in role_trusted_services. Off by default;
# attach the policy to your own role instead if you have one.

data "aws_iam_policy_document" "orchestrator_trust" {
  count = var.create_role ? 1 : 0

  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = var.role_trusted_services
    }
  }
}

resource "aws_iam_role" "orchestrator" {
  count = var.create_role ? 1 : 0

  name                 = var.role_name
  description          = "Runs airunner orchestrator"
  assume_role_policy   = data.aws_iam_policy_document.orchestrator_trust[0].json
  permissions_boundary = var.role_permissions_boundary_arn

  tags = local.tags
}

resource "aws_iam_role_policy_attachment" "orchestrator" {
  count = var.create_role ? 1 : 0

  role       = aws_iam_role.orchestrator[0].name
  policy_arn = aws_iam_policy.orchestrator.arn
}

# EC2 instances take a role through an instance profile.
resource "aws_iam_instance_profile" "orchestrator" {
  count = var.create_role && contains(var.role_trusted_services, "ec2.amazonaws.com") ? 1 : 0

  name = var.role_name
  role = aws_iam_role.orchestrator[0].name

  tags = local.tags
}
