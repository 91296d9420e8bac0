# Stand-in for the real ingestion-server module: terraform_data resources take
# the place of the ECS task definition and service so that the module plans
# and applies offline with only the built-in "terraform" provider.

locals {
  image = "ghcr.io/wordpress/openverse-ingestion_server:${var.image_tag}"
}

# A production deploy restarts the ingestion server, which would kill a data
# refresh in flight; the runbook therefore requires the operator to confirm
# that none is running by setting data_refresh_cleared for the apply.
resource "terraform_data" "data_refresh_gate" {
  count = var.environment == "production" ? 1 : 0

  input = var.image_tag

  lifecycle {
    precondition {
      condition     = var.data_refresh_cleared
      error_message = "Production deploys of the ingestion server require data_refresh_cleared = true (check Airflow: no data refresh may be running)."
    }
  }
}

resource "terraform_data" "task_definition" {
  input = {
    family = "ingestion-server-${var.environment}"
    image  = local.image
  }

  depends_on = [terraform_data.data_refresh_gate]
}

resource "terraform_data" "service" {
  input = {
    name            = "ingestion-server-${var.environment}"
    desired_count   = var.desired_count
    task_definition = terraform_data.task_definition.output.image
  }
}
