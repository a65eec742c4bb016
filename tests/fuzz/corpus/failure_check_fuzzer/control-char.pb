

poller-16f1c2a90œø²Ø•šï:"sense
1*sense1.example.com:4747@J	ETIMEDOUTZ3https://sense1.example.com:4747/engine/healthcheck/`ˆ'‚timeout after 5000 ms