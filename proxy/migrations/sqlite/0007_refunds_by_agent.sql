-- An agent's refunds of the day (`refund_daily`), found without reading every refund.
CREATE INDEX refunds_by_agent_day ON refunds (agent, created_at);
