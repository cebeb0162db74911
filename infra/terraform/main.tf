# AWS resources for `airunner orchestrator`: stateless API servers that keep
# jobs in DynamoDB and hand them to workers through SQS. dynamodb.tf holds the
# tables, sqs.tf the queues, iam.tf the orchestrator's rights, outputs.tf what
# the orchestrator needs to find them.

provider "aws" {
  region = var.region
}

data "aws_region" "current" {}

locals {
  tags = merge(var.tags, { app = "airunner" })

  # SQS names: queue "default" is airunner-default, its dead-letter queue
  # airunner-default-dlq. With priority_bands, each queue also has
  # default-hi (priorities above 0) and default-lo (below 0), each with its
  # own dead-letter queue (specs/storage.md, "Delayed starts and priorities").
  queue_names = toset(flatten([
    for name in var.queue_names : var.priority_bands ? [name, "${name}-hi", "${name}-lo"] : [name]
  ]))

  # The environment variable the orchestrator reads a queue's URL from:
  # "gpu-large" -> AIRUNNER_SQS_QUEUE_GPU_LARGE, "gpu-large-hi" -> ..._GPU_LARGE_HI.
  queue_env_names = {
    for name in local.queue_names : name => "AIRUNNER_SQS_QUEUE_${upper(replace(name, "-", "_"))}"
  }

  # SQS keeps a message at most 14 days; both the queues and their
  # dead-letter queues keep them that long.
  message_retention_seconds = 1209600
}
