# syntax=docker/dockerfile:1.17
# check=error=true
#
# The operator: `runahead operator` (see charts/runahead-operator). Build from the repository root:
#
#   docker build -f images/operator.Dockerfile -t <registry>/runahead-operator:<version> .
#
# Bases are pinned by exact tag; pin a digest too (`node:24.21.0-bookworm-slim@sha256:...`) where
# your registry policy requires it: it cannot be resolved from the machine these files are written on.
ARG NODE_IMAGE=node:24.21.0-bookworm-slim

# Compiles TypeScript to dist/ (make build). Install scripts stay off as in development
# (package.json allowScripts): none is needed to compile.
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY core core
COPY worker worker
COPY operator operator
COPY cli cli
# tsc through node itself: the `node` devDependency's shim on PATH is not installed without scripts.
# tsc emits only .ts files; anything else under the sources (pages, assets) is copied beside them.
RUN node node_modules/typescript/bin/tsc -p tsconfig.build.json \
 && find core worker operator cli -type f ! -name '*.ts' -exec cp --parents {} dist/ \;

# Production dependencies only. The command-line entry point loads onnxruntime-node for every
# command, so it stays, but only with this platform's native library (the package carries five
# platforms, ~290 MB).
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && npm cache clean --force \
 && ort=node_modules/onnxruntime-node/bin/napi-v6 \
 && arch="$(node -p process.arch)" \
 && find "$ort" -mindepth 1 -maxdepth 1 ! -name linux -exec rm -rf {} + \
 && find "$ort/linux" -mindepth 1 -maxdepth 1 ! -name "$arch" -exec rm -rf {} +

FROM ${NODE_IMAGE}
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules node_modules
COPY --from=build /src/dist dist
COPY package.json ./
COPY bin bin
# The image's `node` user has uid 1000; a numeric uid outside the range of distribution users lets
# Kubernetes check runAsNonRoot without reading /etc/passwd.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["node", "/app/bin/runahead.js"]
CMD ["operator"]
