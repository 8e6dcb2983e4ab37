-- One GraphQL operation, with a Bearer token taken in turn from TOKENS_FILE (one per
-- line) when the operation needs one. Environment: QUERY, TOKENS_FILE (optional),
-- DELAY_MS (optional: each connection waits that long before its next request, for a
-- steady load below the server's most instead of as much as it can answer).
dofile(os.getenv("WRK_DIR") .. "/common.lua")

local body = '{"query":"' .. os.getenv("QUERY") .. '"}'
local tokens, next_token = {}, 0
local tokens_file = os.getenv("TOKENS_FILE")

function init(args)
  if tokens_file then
    for line in io.lines(tokens_file) do table.insert(tokens, line) end
  end
  next_token = (id or 1) * 7919  -- threads start at different tokens
end

function request()
  local headers = {["Content-Type"] = "application/json"}
  if #tokens > 0 then
    next_token = next_token + 1
    headers["Authorization"] = "Bearer " .. tokens[next_token % #tokens + 1]
  end
  return wrk.format("POST", "/graphql", headers, body)
end

function response(status, headers, body)
  count(status, body)
end

local delay_ms = tonumber(os.getenv("DELAY_MS") or "")
if delay_ms then  -- defined only then: wrk times every request once delay() exists
  function delay() return delay_ms end
end
