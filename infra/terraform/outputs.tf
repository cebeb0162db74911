output "queue_urls" {
  description = "SQS queue URL of each airunner queue, keyed by airunner queue name."
  value       = { for name, queue in aws_sqs_queue.main : name => queue.url }
}

output "dead_letter_queue_urls" {
  description = "SQS dead-letter queue URL of each airunner queue, keyed by airunner queue name."
  value       = { for name, queue in aws_sqs_queue.dlq : name => queue.url }
}

output "dead_letter_queue_arns" {
  description = "SQS dead-letter queue ARN of each airunner queue (for aws sqs start-message-move-task), keyed by airunner queue name."
  value       = { for name, queue in aws_sqs_queue.dlq : name => queue.arn }
}

output "jobs_table_name" {
  description = "DynamoDB jobs table (--jobs-table, AIRUNNER_DYNAMODB_JOBS_TABLE)."
  value       = aws_dynamodb_table.jobs.name
}

output "events_table_name" {
  description = "DynamoDB events table (--events-table, AIRUNNER_DYNAMODB_EVENTS_TABLE)."
  value       = aws_dynamodb_table.events.name
}

output "orchestrator_policy_arn" {
  description = "IAM policy with the orchestrator's rights; attach it to the role or user the orchestrator runs as."
  value       = aws_iam_policy.orchestrator.arn
}

output "orchestrator_role_arn" {
  description = "IAM role carrying the policy (null unless create_role is true)."
  value       = one(aws_iam_role.orchestrator[*].arn)
}

output "orchestrator_instance_profile_name" {
  description = "EC2 instance profile for the role (null unless create_role is true and role_trusted_services holds ec2.amazonaws.com)."
  value       = one(aws_iam_instance_profile.orchestrator[*].name)
}

output "orchestrator_environment" {
  description = "Environment variables for `airunner orchestrator`: one AIRUNNER_SQS_QUEUE_<NAME> per queue, the table names and AWS_REGION."
  value = merge(
    { for name, queue in aws_sqs_queue.main : local.queue_env_names[name] => queue.url },
    {
      AIRUNNER_DYNAMODB_JOBS_TABLE   = aws_dynamodb_table.jobs.name
      AIRUNNER_DYNAMODB_EVENTS_TABLE = aws_dynamodb_table.events.name
      AWS_REGION                     = data.aws_region.current.name
    },
  )
}
