# Clipper model image: a JavaScript/TypeScript predict module (bundled) served by the Node RPC v3 runtime.
# Generated from templates/docker/node.Dockerfile; each step is a function in src/images/dockerfile.ts.
{{base}}
{{node_env}}
{{node_version_check}}
{{runtime}}
{{npm_dependencies}}
{{model}}
{{model_env}}
{{labels}}
{{command}}
