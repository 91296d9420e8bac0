variable "image_tag" {
  type        = string
  description = "Tag of ghcr.io/wordpress/openverse-ingestion_server to run, e.g. rel-2023.07.03.17.52.00."

  validation {
    condition     = length(var.image_tag) > 0
    error_message = "image_tag must not be empty."
  }
}

variable "environment" {
  type        = string
  description = "Deployment environment: staging or production."
}

variable "data_refresh_cleared" {
  type        = bool
  default     = false
  description = "Set to true only while applying a production deploy, after checking that no data refresh is running in Airflow."
}

variable "desired_count" {
  type        = number
  default     = 1
  description = "Number of ingestion-server tasks to run."
}
