import Stripe from "stripe";
import { Octokit } from "@octokit/rest";

const stripe = new Stripe("⟦S:stripe-live⟧", { apiVersion: "2024-06-20" });
const octokit = new Octokit({ auth: process.env.⟦L=GITHUB_TOKEN⟧ });

export const config = {
  apiBase: "https://api.example.com/v2",
  headers: {
    "X-Api-Key": "⟦S:prefixed/pk_⟧",
    "Content-Type": "application/json",
  },
  retry: { attempts: 3, backoffMs: 250 },
  integrity: "⟦L:integrity⟧",
  anthropicKey: import.meta.env.⟦L=VITE_ANTHROPIC_KEY⟧,
};

export async function notify(text: string) {
  await fetch("https://hooks.slack.com/services/⟦S:slack-webhook⟧", {
    method: "POST",
    body: JSON.stringify({ text }),
  });
}

const requestId = "⟦L:uuid⟧";
const linearToken = `${process.env.LINEAR_TOKEN}`;
