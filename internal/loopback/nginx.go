package loopback

import "fmt"

// NginxConf is a whole nginx.conf for a server run in the foreground
// under dir (its pid file, error log and temporary directories), with one
// worker and the given http server block (the "server { ... }" lines).
// errorLevel is the error log's level ("warn", "info").
func NginxConf(dir, errorLevel string, workerConnections int, server string) string {
	return fmt.Sprintf(`daemon off;
master_process on;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log %[2]s;
events { worker_connections %[3]d; }
http {
  access_log off;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
%[4]s}
`, dir, errorLevel, workerConnections, server)
}
