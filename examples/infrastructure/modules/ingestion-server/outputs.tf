output "image" {
  description = "Image the task definition runs."
  value       = terraform_data.task_definition.output.image
}
