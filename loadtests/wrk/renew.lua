-- Rotating renewal: each answer carries the refresh token to use next, so tokens go
-- round a queue (one per session, from TOKENS_FILE).
dofile(os.getenv("WRK_DIR") .. "/common.lua")

local body = '{"query":"mutation { renew { accessToken refreshToken } }"}'
local queue, first, last = {}, 1, 0

function init(args)
  for line in io.lines(os.getenv("TOKENS_FILE")) do
    last = last + 1
    queue[last] = line
  end
  -- Each thread works on its own share of the sessions.
  local threads = tonumber(os.getenv("THREADS") or "1")
  local kept, n = {}, 0
  for i = first, last do
    if (i % threads) == ((id or 1) % threads) then n = n + 1; kept[n] = queue[i] end
  end
  queue, first, last = kept, 1, n
end

function request()
  local token = queue[first]
  queue[first] = nil
  first = first + 1
  return wrk.format("POST", "/graphql",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token}, body)
end

function response(status, headers, body)
  count(status, body)
  local token = body:match('"refreshToken":"([^"]+)"')
  if token then last = last + 1; queue[last] = token end
end
