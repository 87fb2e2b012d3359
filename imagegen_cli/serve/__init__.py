"""Front doors to the engine other than the command line: `imagegen serve` (OpenAI's
Images API over HTTP) and `imagegen mcp` (an MCP server over stdio).

    bridge.py      one image request through the engine's entry point (engine/run.py),
                   shared by both doors: one session (providers created once, the local
                   model kept loaded), one set of Gates (-j, rpm, the 429 pause), the cost
                   caps, the output folder, the history hook
    openai_api.py  OpenAI's request bodies -> typed options, answers and errors in its shape
    http.py        the ASGI app (Starlette) and its server (uvicorn): auth, caps, SSE
    mcp_tools.py   the MCP tools (the official `mcp` SDK)

Imported only by the `serve` and `mcp` commands' bodies: Starlette, uvicorn and the
MCP SDK are the optional `serve` extra, never on the --help path.
"""
