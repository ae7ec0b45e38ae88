# syntax=docker/dockerfile:1

# Build: docker build --build-arg VERSION=$(git describe --tags --always --dirty) -t rotator .
# Run:   docker run --rm -v rotator-data:/var/lib/rotator \
#          -v "$PWD/rotator.yaml:/etc/rotator/rotator.yaml:ro" -p 8080:8080 rotator

ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
WORKDIR /src

# Dependencies first, so that source changes reuse the module cache layer.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download

COPY . .
ARG VERSION=dev
ARG TARGETOS
ARG TARGETARCH
# CGO_ENABLED=0: the SQLite driver (modernc.org/sqlite) is pure Go, so the
# binary is static and runs on distroless/static.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/rotator ./cmd/rotator \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot

LABEL org.opencontainers.image.title="rotator" \
      org.opencontainers.image.description="Rotates the credentials of MCP servers and clients" \
      org.opencontainers.image.source="https://github.com/rotatorhq/rotator"

COPY --from=build /out/rotator /rotator
# Runbooks are read at rotation time (each run records the runbook it followed).
COPY --from=build /src/runbooks /etc/rotator/runbooks
# The working directory holds the embedded SQLite database when
# ROTATOR_DATABASE_URL is unset (sqlite://./rotator.db) and relative file
# target paths; mount a volume here to keep them. uid/gid 65532 is nonroot.
COPY --from=build --chown=65532:65532 /out/data /var/lib/rotator
WORKDIR /var/lib/rotator

USER nonroot:nonroot
EXPOSE 8080
# No HEALTHCHECK: distroless has no shell or curl. Orchestrators probe
# GET /healthz (liveness) and GET /readyz (readiness) on the listen address.
ENTRYPOINT ["/rotator"]
CMD ["serve", "-f", "/etc/rotator/rotator.yaml", "--listen", ":8080"]
