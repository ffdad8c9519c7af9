# Clipper runtime image: the management daemon and the query frontend, from the bundled runtime.
# Generated from templates/docker/runtime.Dockerfile; each step is a function in src/images/dockerfile.ts.
{{base}}
{{node_env}}
{{node_version_check}}
{{runtime}}
{{labels}}
{{command}}
