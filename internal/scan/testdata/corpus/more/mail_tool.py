from fastmcp import FastMCP

mcp = FastMCP("mail")


@mcp.tool
def send_mail(to: str, subject: str, ⟦T:smtp_password⟧: str) -> str:
    return "ok"


@mcp.tool
def list_mail(folder: str, ⟦L=page_token⟧: str = "") -> list[str]:
    return []
