#!/bin/sh
# Greets with the message from /etc/hello/config.json.
sed -n 's/.*"message": *"\([^"]*\)".*/\1/p' /etc/hello/config.json
