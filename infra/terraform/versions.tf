terraform {
  required_version = ">= 1.5"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.0"
    }
  }

  # State stays in a local terraform.tfstate unless you add a backend. For a
  # team, keep it in S3 with locking, for example (use_lockfile needs
  # Terraform 1.10 or later; older versions lock with a dynamodb_table):
  #
  # backend "s3" {
  #   bucket       = "my-terraform-state"
  #   key          = "airunner/terraform.tfstate"
  #   region       = "eu-west-1"
  #   use_lockfile = true
  # }
}
