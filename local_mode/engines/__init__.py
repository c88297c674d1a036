"""What the serving containers do with a request, for local endpoints: TGI's and vLLM's HTTP contracts.

`ServedModel` loads the merged model once; each engine module parses its container's request
format, tokenizes the way that engine tokenizes, applies its limits and answers in its format.
"""
