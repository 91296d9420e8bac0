# syntax=docker/dockerfile:1
# Build deploybot and Terraform 1.5.7 (the last MPL release, from the Go
# module proxy), then run them as an unprivileged user next to git.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/deploybot ./cmd/deploybot
RUN CGO_ENABLED=0 GOBIN=/out go install github.com/hashicorp/terraform@v1.5.7

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends git ca-certificates openssh-client \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 deploybot \
 && mkdir -p /home/deploybot/state \
 && chown deploybot:deploybot /home/deploybot/state
COPY --from=build /out/deploybot /out/terraform /usr/local/bin/
USER deploybot
WORKDIR /home/deploybot
# state_path and infra.workdir should point into this volume. The directory
# exists and belongs to deploybot before VOLUME, so a new named volume is
# created with that owner (and not root's).
VOLUME ["/home/deploybot/state"]
ENV DEPLOYBOT_CONFIG=/etc/deploybot/config.yaml
# /healthz, /readyz and /metrics on every interface, so the port can be
# published; outside a container http_addr defaults to the loopback.
ENV DEPLOYBOT_HTTP_ADDR=0.0.0.0:9090
EXPOSE 9090
# Healthy while Slack is connected and the store answers (/readyz), asked
# by the binary itself: the image has no curl.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
  CMD ["/usr/local/bin/deploybot", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/deploybot"]
