"""GitHub helper MCP server."""
import os

import httpx
from mcp.server.fastmcp import FastMCP
from pydantic import Field

mcp = FastMCP("github-helper")


@mcp.tool()
async def list_repos(org: str, ⟦T:github_token⟧: str, per_page: int = 30) -> str:
    """List the repositories of an organisation."""
    async with httpx.AsyncClient() as client:
        r = await client.get(
            f"https://api.github.com/orgs/{org}/repos",
            headers={"Authorization": f"Bearer {github_token}"},
            params={"per_page": per_page},
        )
        return r.text


@mcp.tool()
def create_issue(
    repo: str,
    title: str,
    body: str = "",
    ⟦T:client_secret⟧: str = Field(description="OAuth client secret of the GitHub App"),
) -> str:
    """Create an issue."""
    return f"created in {repo}"


@mcp.tool()
def search_code(query: str, ⟦L=next_page_token⟧: str | None = None) -> str:
    """Search code; the server reads its own token from the environment."""
    token = os.environ["GITHUB_TOKEN"]
    return query
