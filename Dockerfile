# One image for `remediator api` and `remediator worker`. The worker runs fix
# recipes (gofmt, go mod tidy, git), so the runtime keeps the Go toolchain and git.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/remediator .

FROM golang:1.26-bookworm
# Recipe commands run in a bubblewrap sandbox (REMEDIATOR_RECIPE_SANDBOX).
RUN apt-get update && apt-get install -y --no-install-recommends bubblewrap && rm -rf /var/lib/apt/lists/*
RUN useradd --system --create-home --home-dir /home/remediator remediator \
 && mkdir -p /var/lib/remediator && chown remediator /var/lib/remediator
COPY --from=build /out/remediator /usr/local/bin/remediator
USER remediator
ENV REMEDIATOR_DATA_DIR=/var/lib/remediator
ENTRYPOINT ["remediator"]
CMD ["api"]
