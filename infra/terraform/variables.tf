variable "region" {
  description = "AWS region for the queues and tables. null uses the provider's usual lookup (AWS_REGION, then the profile)."
  type        = string
  default     = null
}

variable "queue_names" {
  description = "airunner queue names. Each gets an SQS standard queue <queue_prefix><name> and a dead-letter queue <queue_prefix><name>-dlq."
  type        = list(string)
  nullable    = false
  default     = ["default", "priority"]

  validation {
    condition     = length(var.queue_names) > 0
    error_message = "queue_names needs at least one queue."
  }

  validation {
    # The same rule airunner applies to queue names at its RPC edge.
    condition     = alltrue([for name in var.queue_names : can(regex("^[A-Za-z0-9_-]{1,64}$", name))])
    error_message = "Each queue name must be 1 to 64 characters of A-Z, a-z, 0-9, '_' and '-'."
  }

  validation {
    condition     = alltrue([for name in var.queue_names : !can(regex("(?i)[-_](hi|lo|dlq)$", name))])
    error_message = "A queue name may not end in -hi, -lo or -dlq (or _hi, _lo, _dlq): those name priority band and dead-letter queues."
  }

  validation {
    condition     = length(distinct(var.queue_names)) == length(var.queue_names)
    error_message = "queue_names lists a name twice."
  }

  validation {
    # The orchestrator finds a queue's URL in AIRUNNER_SQS_QUEUE_<NAME>, with
    # NAME upper-cased and '-' turned into '_'; two names must not share one.
    condition = length(distinct([
      for name in var.queue_names : upper(replace(name, "-", "_"))
    ])) == length(var.queue_names)
    error_message = "Two queue names map to the same AIRUNNER_SQS_QUEUE_<NAME> variable (names differ only in case or in '-' versus '_')."
  }
}

variable "queue_prefix" {
  description = "Prefix of every SQS queue name. Must match the orchestrator's --queue-prefix (default airunner-)."
  type        = string
  nullable    = false
  default     = "airunner-"

  validation {
    # The orchestrator's --queue-prefix accepts the same.
    condition     = can(regex("^[A-Za-z0-9_-]{0,40}$", var.queue_prefix))
    error_message = "queue_prefix may hold up to 40 of A-Z, a-z, 0-9, '_' and '-'."
  }
}

variable "priority_bands" {
  description = "Create each queue's priority band queues (<name>-hi, <name>-lo), which jobs with --priority other than 0 need."
  type        = bool
  nullable    = false
  default     = true
}

variable "max_receive_count" {
  description = "Receives after which SQS moves a message to its queue's dead-letter queue."
  type        = number
  nullable    = false
  default     = 200

  # airunner sends a fresh message for every attempt (a retry, a lost
  # worker, a hand-back), so one message is received only a few times; this
  # catches a message that something else keeps returning. The server's
  # own provisioning uses the same 200, above the 101 attempts a job may
  # have (--retries 100).
  validation {
    condition     = var.max_receive_count >= 1 && var.max_receive_count <= 1000 && floor(var.max_receive_count) == var.max_receive_count
    error_message = "max_receive_count must be a whole number from 1 to 1000 (the SQS range)."
  }
}

variable "visibility_timeout_seconds" {
  description = "Queue default visibility timeout. airunner sets the timeout on each receive, so this only applies to other consumers."
  type        = number
  nullable    = false
  default     = 300

  validation {
    condition     = var.visibility_timeout_seconds >= 0 && var.visibility_timeout_seconds <= 43200
    error_message = "visibility_timeout_seconds must be from 0 to 43200 (12 hours, the SQS maximum)."
  }
}

variable "jobs_table_name" {
  description = "DynamoDB table for jobs. The orchestrator reads it from --jobs-table or AIRUNNER_DYNAMODB_JOBS_TABLE."
  type        = string
  nullable    = false
  default     = "airunner-jobs"
}

variable "events_table_name" {
  description = "DynamoDB table for job events (output, state changes). The orchestrator reads it from --events-table or AIRUNNER_DYNAMODB_EVENTS_TABLE."
  type        = string
  nullable    = false
  default     = "airunner-events"
}

variable "dynamodb_kms_key_arn" {
  description = "ARN of a customer managed KMS key for both tables. null keeps DynamoDB's AWS owned key (no KMS charge)."
  type        = string
  default     = null
}

variable "deletion_protection" {
  description = "Turn on DynamoDB deletion protection for both tables. Recommended in production; turn it off (and apply) before terraform destroy."
  type        = bool
  nullable    = false
  default     = false
}

variable "policy_name" {
  description = "Name of the IAM policy that grants the orchestrator its SQS and DynamoDB rights."
  type        = string
  nullable    = false
  default     = "airunner-orchestrator"
}

variable "create_role" {
  description = "Also create an IAM role with the orchestrator policy attached (for ECS tasks, EC2 instances and the like)."
  type        = bool
  nullable    = false
  default     = false
}

variable "role_name" {
  description = "Name of the IAM role (and instance profile) made when create_role is true."
  type        = string
  nullable    = false
  default     = "airunner-orchestrator"
}

variable "role_trusted_services" {
  description = "AWS service principals that may assume the role, e.g. [\"ecs-tasks.amazonaws.com\"] or [\"ec2.amazonaws.com\"]. With ec2.amazonaws.com an instance profile is made too."
  type        = list(string)
  nullable    = false
  default     = ["ecs-tasks.amazonaws.com"]

  validation {
    condition     = length(var.role_trusted_services) > 0
    error_message = "role_trusted_services needs at least one service principal."
  }
}

variable "role_permissions_boundary_arn" {
  description = "Optional permissions boundary for the role, for accounts that require one."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags for every resource. app = \"airunner\" is always added."
  type        = map(string)
  nullable    = false
  default     = {}
}
