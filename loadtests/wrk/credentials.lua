-- login with the accounts of EMAILS_FILE in turn, or register new ones (MODE=register).
-- RETRY_AFTER=1: after a "busy" answer (status 503), wait the seconds of its Retry-After
-- header before the next request, as a client that honours it does; unset: a flood that
-- sends the next request at once.
dofile(os.getenv("WRK_DIR") .. "/common.lua")

local honour = os.getenv("RETRY_AFTER") == "1"
-- wrk asks delay() once for each next request, after the answer to the previous one on
-- the same connection; a thread may serve many connections, so the waits owed are
-- queued and each next request pays one. bench.py gives each connection a thread of
-- its own when RETRY_AFTER=1, so that the connection told to wait is the one that waits
-- (the server judges each connection by what it did).
local owed, first, last = {}, 1, 0

local mode = os.getenv("MODE")
local password = os.getenv("PASSWORD")
local run = os.getenv("RUN_ID")
local emails, counter = {}, 0

function init(args)
  if mode == "login" then
    for line in io.lines(os.getenv("EMAILS_FILE")) do table.insert(emails, line) end
  end
end

function request()
  counter = counter + 1
  local email
  if mode == "login" then
    email = emails[counter % #emails + 1]
  else
    email = string.format("bench-%s-%d-%d@example.com", run, id or 1, counter)
  end
  local body = string.format(
    '{"query":"mutation($e: String!, $p: String!) { %s(email: $e, password: $p) { status errors { message } } }",' ..
    '"variables":{"e":"%s","p":"%s"}}', mode, email, password)
  return wrk.format("POST", "/graphql", {["Content-Type"] = "application/json"}, body)
end

function response(status, headers, body)
  count(status, body)
  local retry_after = tonumber(headers["Retry-After"] or "")
  if honour and retry_after and body:find('"status":503', 1, true) then
    last = last + 1
    owed[last] = retry_after * 1000
  end
end

function delay()
  if first <= last then
    local wait = owed[first]
    owed[first] = nil
    first = first + 1
    return wait
  end
  return 0
end
