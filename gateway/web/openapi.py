"""Writes openapi.json, the REST API's description (embedded in the binary; `edge-web`'s tests check
it against the route table, and CI's web suite checks the live server against it with schemathesis).
Edit this file and run it; commit both."""
import json
import os
S=lambda **k: dict(type="object", **k)
def obj(props, req=None, extra=False):
    o={"type":"object","properties":props}
    if req: o["required"]=req
    if not extra: o["additionalProperties"]=False
    return o
s=lambda: {"type":"string"}
ns=lambda: {"type":"string","nullable":True}
i=lambda: {"type":"integer","minimum":0}
ni=lambda: {"type":"integer","minimum":0,"nullable":True}
n=lambda: {"type":"number"}
b=lambda: {"type":"boolean"}
arr=lambda x: {"type":"array","items":x}
ref=lambda name: {"$ref":"#/components/schemas/"+name}
schemas={
 "Error": {"type":"object","properties":{"error":s()},"required":["error"]},
 "Rejected": {"type":"object","properties":{"error":s(),"fields":{"type":"object","additionalProperties":s()}},"required":["error"]},
 "LoginState": obj({"setup_required":b()},["setup_required"]),
 "Password": obj({"password":{"type":"string","maxLength":4096}},["password"]),
 "PasswordChange": obj({"current":s(),"new":s()},["current","new"]),
 "Session": obj({"csrf":s(),"idle_timeout_s":i()},["csrf","idle_timeout_s"]),
 "Status": obj({"version":s(),"slot":ns(),"hostname":s(),"uptime_s":i(),"cpu_percent":n(),
   "memory":obj({"total_bytes":i(),"available_bytes":i(),"process_bytes":i()},["total_bytes","available_bytes","process_bytes"]),
   "ready":b(),"calls":obj({"active":i(),"total":i()},["active","total"]),
   "registrations":obj({"count":i(),"users":arr(obj({"user":s(),"transport":s(),"expires_in_s":i()},["user","transport","expires_in_s"]))},["count","users"]),
   "trunks":arr(obj({"name":s(),"target":s(),"up":b(),"monitored":b(),"calls":i()},["name","target","up","monitored","calls"])),
   "events":arr(obj({"time":i(),"level":{"type":"string","enum":["info","warn","alarm"]},"message":s()},["time","level","message"]))},
   ["version","slot","hostname","uptime_s","cpu_percent","memory","ready","calls","registrations","trunks","events"]),
 "Calls": obj({"calls":arr(obj({"id":s(),"from":s(),"to":s(),"state":{"type":"string","enum":["ringing","answered","ending"]},"started":i(),"duration_s":i(),"trunk":ns(),
   "legs":arr(obj({"side":{"type":"string","enum":["browser","trunk","peer"]},"codec":ns(),"packets_in":i(),"packets_out":i(),"lost":i(),"loss_percent":n()},["side","codec","packets_in","packets_out","lost","loss_percent"]))},
   ["id","from","to","state","started","duration_s","trunk","legs"]))},["calls"]),
 "History": obj({"interval_s":i(),"samples":arr(obj({"time":i(),"calls":i(),"packets":i()},["time","calls","packets"]))},["interval_s","samples"]),
 "ConfigView": obj({"schema":i(),"path":ns(),"config":{"type":"object"}},["schema","path","config"]),
 "ConfigBody": obj({"config":{"type":"object"}},["config"]),
 "Applied": obj({"applied":arr(s()),"restart_required":arr(s()),"message":s()},["applied","restart_required","message"]),
 "Network": obj({"mode":{"type":"string","enum":["dhcp","static"]},"address":s(),"gateway":s(),"dns":arr(s()),"ntp":s(),"applies":{"type":"string","readOnly":True}},["mode"]),
 "Certificate": obj({"present":b(),"subject":ns(),"not_after":ns(),"self_signed":b(),"sha256":ns(),"wss_listeners":arr(s())},["present","subject","not_after","self_signed","sha256","wss_listeners"]),
 "Generate": obj({"hostname":{"type":"string","minLength":1,"maxLength":253,"pattern":"^[A-Za-z0-9-]{1,63}(\\.[A-Za-z0-9-]{1,63})*$"}},["hostname"]),
 "CertificateUpload": obj({"cert_pem":{"type":"string","minLength":1},"key_pem":{"type":"string","minLength":1}},["cert_pem","key_pem"]),
 "TestCallBody": obj({"trunk":ns()}),
 "TestCall": obj({"trunk":s(),"target":s(),"method":s(),"status":ni(),"reason":ns(),"rtt_ms":ni(),"error":ns()},["trunk","target","method","status","reason","rtt_ms","error"]),
 "Update": obj({"version":s(),"slot":ns(),"other_slot":ns(),"agent":ns(),
   "progress":{"type":"object","nullable":True,"properties":{"state":s(),"percent":{"type":"integer","minimum":0,"maximum":100},"message":s()},"required":["state","percent","message"],"additionalProperties":False},
   "server":ns(),"uploads":b()},["version","slot","other_slot","agent","progress","server","uploads"]),
 "Uploaded": obj({"version":s(),"board":s(),"message":s()},["version","board","message"]),
 "Message": obj({"message":s()},["message"]),
 "Logs": obj({"lines":arr(obj({"time":i(),"level":s(),"message":s()},["time","level","message"]))},["lines"]),
 "Cdrs": obj({"records":arr(obj({"id":s(),"start":i(),"answer":ni(),"end":i(),"duration_s":i(),"from":s(),"to":s(),"trunk":ns(),"status":ni(),"reason":s()},
   ["id","start","answer","end","duration_s","from","to","trunk","status","reason"]))},["records"]),
}
def js(name): return {"content":{"application/json":{"schema":ref(name)}}}
def resp(code, desc, name=None, ct=None, headers=None):
    r={"description":desc}
    if name: r.update(js(name))
    if ct: r["content"]={ct:{"schema":{"type":"string"}}}
    if headers: r["headers"]=headers
    return (str(code), r)
E401=resp(401,"no valid session","Error")
E403=resp(403,"missing or wrong X-CSRF-Token","Error")
E400=resp(400,"malformed request","Error")
E415=resp(415,"not JSON","Error")
E413=resp(413,"too large","Error")
E422=resp(422,"refused, with the field at fault","Rejected")
def op(summary, responses, body=None, public=False, params=None, change=False):
    o={"summary":summary,"responses":dict(responses)}
    if public: o["security"]=[]
    if body: o["requestBody"]=body
    if params: o["parameters"]=params
    if change and not public:
        o["security"]=[{"session":[],"csrf":[]}]
        o["responses"].update(dict([E403]))
    if not public: o["responses"].update(dict([E401]))
    return o
jb=lambda name: {"required":True,"content":{"application/json":{"schema":ref(name)}}}
setcookie={"Set-Cookie":{"description":"the session cookie","schema":{"type":"string"}}}
paths={
 "/api/login":{
   "get":op("Whether first boot must set the admin password",[resp(200,"state","LoginState")],public=True),
   "post":op("Log in",[resp(200,"logged in; the session cookie is set","Session",headers=setcookie),resp(401,"wrong password","Error"),E400,E415,E413,
      resp(403,"cross-origin login","Error"),resp(409,"no admin password yet","Error"),resp(429,"too many failed logins","Error",headers={"Retry-After":{"schema":{"type":"integer"}}})],body=jb("Password"),public=True)},
 "/api/setup":{"post":op("Set the admin password (first boot only)",[resp(200,"set; logged in","Session",headers=setcookie),E400,E415,E413,E422,resp(403,"cross-origin setup","Error"),resp(409,"already set","Error")],body=jb("Password"),public=True)},
 "/api/openapi.json":{"get":op("This document",[resp(200,"OpenAPI 3.0",None,"application/json")],public=True)},
 "/api/logout":{"post":op("Log out",[resp(204,"session ended")],change=True)},
 "/api/session":{"get":op("The session's CSRF token",[resp(200,"session","Session")])},
 "/api/password":{"post":op("Change the admin password (ends every session)",[resp(204,"changed"),E400,E415,E413,E422],body=jb("PasswordChange"),change=True)},
 "/api/status":{"get":op("The dashboard",[resp(200,"status","Status")])},
 "/api/calls":{"get":op("Calls up now",[resp(200,"calls","Calls")])},
 "/api/history":{"get":op("Calls and media packets over the last hour",[resp(200,"samples","History")])},
 "/api/config":{"get":op("The configuration as JSON",[resp(200,"config","ConfigView"),resp(500,"unreadable","Error")]),
   "put":op("Validate, save and apply a whole configuration",[resp(200,"saved","Applied"),E400,E415,E413,E422],body=jb("ConfigBody"),change=True)},
 "/api/config/export":{"get":op("The configuration file (TOML)",[resp(200,"gatewayd.toml",None,"application/toml"),resp(500,"unreadable","Error")])},
 "/api/config/import":{"post":op("Validate, save and apply a TOML configuration file",[resp(200,"saved","Applied"),E400,E413,E422],
   body={"required":True,"content":{"application/toml":{"schema":{"type":"string"}},"text/plain":{"schema":{"type":"string"}}}},change=True)},
 "/api/network":{"get":op("Network and time settings (applied at the next boot)",[resp(200,"settings","Network"),resp(500,"unreadable","Error")]),
   "put":op("Save network and time settings",[resp(200,"saved","Network"),E400,E415,E413,E422],body=jb("Network"),change=True)},
 "/api/certificate":{"get":op("The WSS certificate",[resp(200,"certificate","Certificate")]),
   "put":op("Install an uploaded certificate and key",[resp(200,"installed","Certificate"),E400,E415,E413,E422],body=jb("CertificateUpload"),change=True)},
 "/api/certificate/generate":{"post":op("Make and install a self-signed certificate",[resp(200,"installed","Certificate"),E400,E415,E413,E422],body=jb("Generate"),change=True)},
 "/api/test-call":{"post":op("Send OPTIONS to a trunk and report the answer",[resp(200,"what came back","TestCall"),E400,E415,E413,resp(404,"no such trunk","Error"),resp(409,"no trunk configured","Error"),resp(503,"the gateway is busy","Error")],
   body={"required":False,"content":{"application/json":{"schema":ref("TestCallBody")}}},change=True)},
 "/api/update":{"get":op("Update state",[resp(200,"state","Update")])},
 "/api/update/check":{"post":op("Ask the agent to check in now",[resp(202,"asked","Message"),resp(409,"no update server or agent","Error")],change=True)},
 "/api/update/upload":{"post":op("Upload a signed bundle (verified before the agent sees it)",[resp(202,"verified; the agent installs it","Uploaded"),E400,E413,
   resp(409,"uploads not available here","Error"),resp(422,"not a valid bundle for this device","Error"),resp(500,"cannot store it","Error")],
   body={"required":True,"content":{"application/octet-stream":{"schema":{"type":"string","format":"binary"}}}},change=True)},
 "/api/update/rollback":{"post":op("Boot the other slot",[resp(202,"rebooting into the other slot","Message"),resp(409,"not possible","Error")],change=True)},
 "/api/logs":{"get":op("Recent log lines",[resp(200,"lines","Logs"),E400],params=[{"name":"limit","in":"query","required":False,"schema":{"type":"integer","minimum":1,"maximum":5000}}])},
 "/api/logs/download":{"get":op("Recent log lines as text",[resp(200,"gatewayd.log",None,"text/plain")])},
 "/api/cdrs":{"get":op("Recent call detail records",[resp(200,"records","Cdrs")])},
 "/api/cdrs/download":{"get":op("Call detail records as CSV",[resp(200,"cdrs.csv",None,"text/csv")])},
 "/metrics":{"get":{**op("Prometheus metrics",[resp(200,"text exposition",None,"text/plain")]),"security":[{"session":[]},{"bearer":[]}]}},
}
doc={"openapi":"3.0.3","info":{"title":"RTC Edge local API","version":"1",
  "description":"The REST API of the RTC Edge appliance's web UI. Log in with POST /api/login (or set the first password with POST /api/setup); the answer sets the edge_session cookie and carries a CSRF token to send as X-CSRF-Token with every POST, PUT and DELETE. Without a session every route but login, setup and this document answers 401."},
 "servers":[{"url":"/"}],
 "security":[{"session":[]}],
 "paths":paths,
 "components":{"schemas":schemas,
   "securitySchemes":{"session":{"type":"apiKey","in":"cookie","name":"edge_session"},
     "csrf":{"type":"apiKey","in":"header","name":"X-CSRF-Token","description":"The session's CSRF token: required with the session on every POST, PUT and DELETE"},
     "bearer":{"type":"http","scheme":"bearer"}}}}
open(os.path.join(os.path.dirname(os.path.abspath(__file__)),'openapi.json'),'w').write(json.dumps(doc,indent=1)+"\n")
