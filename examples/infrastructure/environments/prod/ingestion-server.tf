# Production deployment of the Openverse ingestion server.
# Runbook: set data_refresh_cleared = true only for the apply, then restore it
# to false in the pull request that records the version bump.
module "ingestion-server" {
  source = "../../modules/ingestion-server"

  # Must be true while applying: no data refresh may be running (check Airflow).
  # Keep this flag on line 9: the runbook points operators at it.
  data_refresh_cleared = false

  environment   = "production"
  desired_count = 2
  image_tag     = "rel-2023.07.03.17.52.00" # last released image
}

output "image" {
  value = module.ingestion-server.image
}
