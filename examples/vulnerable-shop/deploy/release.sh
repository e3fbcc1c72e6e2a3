#!/usr/bin/env bash
# Builds the shop images and pushes them to the GitLab registry.
# Usage: deploy/release.sh 1.8.4   (run from the root of the shop repository)
set -euo pipefail

VERSION="${1:?usage: release.sh VERSION}"
REGISTRY=registry.gitlab.com/shop
GITLAB_TOKEN="glpat-V3uN6YeOcw-sIRVGtfiF"

echo "$GITLAB_TOKEN" | docker login registry.gitlab.com -u shop-release --password-stdin

for pair in api:backend storefront:frontend gateway:gateway worker:worker; do
  image="${pair%%:*}"
  dir="${pair#*:}"
  docker build --pull -t "$REGISTRY/$image:$VERSION" "$dir"
  docker push "$REGISTRY/$image:$VERSION"
done

scp -i deploy/id_deploy deploy/docker-compose.yml deploy@shop-gw.internal:/srv/shop/
ssh -i deploy/id_deploy deploy@shop-gw.internal "cd /srv/shop && docker compose pull && docker compose up -d"
