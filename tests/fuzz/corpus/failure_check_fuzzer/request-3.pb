
Ô

poller-16f1c2a90œø²Ø•šï:"sense1*sense1.example.com:4747:
server_groupDEV:
serverLocationEurope@J	ETIMEDOUTZ3https://sense1.example.com:4747/engine/healthcheck/`ˆ'‚timeout after 5000 ms
¥

poller-16f1c2a90œø²Ø•šï:"sense1*sense1.example.com:47472/sales@
P÷Z3https://sense1.example.com:4747/engine/healthcheck/`ˆ'j10.0.0.7p“!‚HTTP 503
±

poller-16f1c2a90œø²Ø•šï:"sense1*sense1.example.com:4747@JECONNREFUSEDZ3https://sense1.example.com:4747/engine/healthcheck/`ˆ'zconnect‚timeout after 5000 ms