# A local backend keeps this example self-contained (the real infrastructure
# repository uses a remote one). Its path comes from `terraform init
# -backend-config=path=…`, which deploybot passes from the environment's
# backend_config, so that every run's checkout shares one state.
terraform {
  required_version = ">= 1.5.0"

  backend "local" {}
}
