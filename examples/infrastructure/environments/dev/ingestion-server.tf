# Staging deployment of the Openverse ingestion server.
# Bumped by `just bump dev ingestion-server` (or deploybot) before each release.
module "ingestion-server" {
  source = "../../modules/ingestion-server"

  environment = "staging"
  image_tag   = "rel-2023.07.03.17.52.00" # last released image
}

output "image" {
  value = module.ingestion-server.image
}
