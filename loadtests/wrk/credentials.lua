-- login with the accounts of EMAILS_FILE in turn, or register new ones (MODE=register).
-- BACKOFF_MS: after a "busy" answer (status 503), wait that long before the next request,
-- as a client that honours "retry later" does; 0 (a flood) sends it at once.
dofile(os.getenv("WRK_DIR") .. "/common.lua")

local backoff_ms = tonumber(os.getenv("BACKOFF_MS") or "0")
-- wrk asks delay() once for each next request, after the answer to the previous one on
-- the same connection; a thread serves many connections, so the busy answers are
-- counted and each owes one delay (which connection pays it does not matter here).
local owed = 0

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
    '{"query":"mutation($e: String!, $p: String!) { %s(email: $e, password: $p) { status } }",' ..
    '"variables":{"e":"%s","p":"%s"}}', mode, email, password)
  return wrk.format("POST", "/graphql", {["Content-Type"] = "application/json"}, body)
end

function response(status, headers, body)
  count(status, body)
  if backoff_ms > 0 and body:find('"status":503', 1, true) then owed = owed + 1 end
end

function delay()
  if owed > 0 then
    owed = owed - 1
    return backoff_ms
  end
  return 0
end
