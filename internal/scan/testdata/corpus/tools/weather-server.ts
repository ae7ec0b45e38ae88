import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { z } from "zod";

const server = new McpServer({ name: "weather", version: "1.0.0" });

server.tool(
  "get_forecast",
  "Get the weather forecast for a city",
  {
    city: z.string().describe("City name"),
    days: z.number().int().min(1).max(7).default(3),
    ⟦T:apiKey⟧: z.string().describe("OpenWeather API key"),
  },
  async ({ city, days, apiKey }) => {
    const res = await fetch(`https://api.openweathermap.org/data/2.5/forecast?q=${city}&cnt=${days}&appid=${apiKey}`);
    return { content: [{ type: "text", text: await res.text() }] };
  },
);

server.registerTool(
  "send_alert",
  {
    title: "Send alert",
    description: "Send a weather alert to a Slack channel",
    inputSchema: {
      channel: z.string(),
      message: z.string(),
      ⟦T:slackToken⟧: z.string().optional(),
      ⟦L=cursor⟧: z.string().optional().describe("pagination cursor"),
    },
  },
  async ({ channel, message }) => ({ content: [{ type: "text", text: `sent to ${channel}: ${message}` }] }),
);

await server.connect(new StdioServerTransport());
