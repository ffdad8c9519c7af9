# Clipper model image: a Python predict function served by the RPC v3 runtime (clipper_runtime).
# Generated from templates/docker/python.Dockerfile; each step is a function in src/images/dockerfile.ts.
{{base}}
{{python_env}}
{{pip_check}}
{{runtime_dependencies}}
{{framework_dependencies}}
{{requirements}}
{{packages}}
{{runtime}}
{{model}}
{{model_env}}
{{labels}}
{{command}}
