-- login with the accounts of EMAILS_FILE in turn, or register new ones (MODE=register).
dofile(os.getenv("WRK_DIR") .. "/common.lua")

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
end
