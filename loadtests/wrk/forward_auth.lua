-- Forward-auth as a proxy asks it: GET /auth with a Bearer token taken in turn from
-- TOKENS_FILE (one per line); only a 200 counts as a pass.
dofile(os.getenv("WRK_DIR") .. "/common.lua")

local tokens, next_token = {}, 0
local tokens_file = os.getenv("TOKENS_FILE")

function init(args)
  for line in io.lines(tokens_file) do table.insert(tokens, line) end
  next_token = (id or 1) * 7919  -- threads start at different tokens
end

function request()
  next_token = next_token + 1
  local headers = {["Authorization"] = "Bearer " .. tokens[next_token % #tokens + 1]}
  return wrk.format("GET", "/auth", headers)
end

function response(status, headers, body)
  count(status, body)
end
