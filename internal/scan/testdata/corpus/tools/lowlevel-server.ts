import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { ListToolsRequestSchema } from "@modelcontextprotocol/sdk/types.js";

const server = new Server({ name: "crm", version: "0.3.0" }, { capabilities: { tools: {} } });

server.setRequestHandler(ListToolsRequestSchema, async () => ({
  tools: [
    {
      name: "crm_login",
      description: "Log in to the CRM",
      inputSchema: {
        type: "object",
        properties: {
          username: { type: "string" },
          ⟦T:password⟧: { type: "string", description: "CRM password" },
          ⟦L=session_id⟧: { type: "string" },
        },
        required: ["username", "password"],
      },
    },
    {
      name: "crm_call",
      description: "Call a CRM endpoint",
      inputSchema: {
        type: "object",
        properties: {
          path: { type: "string" },
          ⟦T:bearer_token⟧: { type: "string", description: "Bearer token for the CRM API" },
          ⟦L=token_count⟧: { type: "number" },
        },
      },
    },
  ],
}));
