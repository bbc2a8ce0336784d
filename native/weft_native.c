// weft_native: the few syscalls Node and Bun lack — setns, netlink sockets with
// synchronous I/O, and flock. No libuv: the same addon loads in Node and in Bun.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <node_api.h>
#include <poll.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef NETLINK_EXT_ACK
#define NETLINK_EXT_ACK 11
#endif
#ifndef NETLINK_GET_STRICT_CHK
#define NETLINK_GET_STRICT_CHK 12
#endif

#define RECV_BUF (1 << 16)

// Throws an Error carrying code (errno name) and errno, like Node's own fs errors.
static napi_value throw_errno(napi_env env, int err, const char *what) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_value m, e, code, num;
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &m);
  napi_create_error(env, NULL, m, &e);
  const char *name = strerrorname_np(err);
  napi_create_string_utf8(env, name ? name : "EUNKNOWN", NAPI_AUTO_LENGTH, &code);
  napi_create_int32(env, err, &num);
  napi_set_named_property(env, e, "code", code);
  napi_set_named_property(env, e, "errno", num);
  napi_throw(env, e);
  return NULL;
}

static int get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < want) {
    napi_throw_type_error(env, NULL, "missing argument");
    return -1;
  }
  return 0;
}

// The one integer argument of a call.
static int get_int_arg(napi_env env, napi_callback_info info, int *out) {
  napi_value argv[1];
  if (get_args(env, info, 1, argv)) return -1;
  if (napi_get_value_int32(env, argv[0], out) != napi_ok) {
    napi_throw_type_error(env, NULL, "argument must be a number");
    return -1;
  }
  return 0;
}

static int get_fd(napi_env env, napi_value v, int *fd) {
  if (napi_get_value_int32(env, v, fd) != napi_ok) {
    napi_throw_type_error(env, NULL, "fd must be a number");
    return -1;
  }
  return 0;
}

// Returns a malloc'd copy of a JS string argument, or NULL for null/undefined.
static char *get_path(napi_env env, napi_value v, int *failed) {
  napi_valuetype t;
  *failed = 0;
  napi_typeof(env, v, &t);
  if (t == napi_null || t == napi_undefined) return NULL;
  size_t len;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "path must be a string");
    *failed = 1;
    return NULL;
  }
  char *s = malloc(len + 1);
  napi_get_value_string_utf8(env, v, s, len + 1, &len);
  return s;
}

static napi_value make_int(napi_env env, int v) {
  napi_value r;
  napi_create_int32(env, v, &r);
  return r;
}

// Opens a netlink socket; a socket stays in the netns it was created in, so entering
// the target netns only for the socket() call is enough.
static napi_value nl_open(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (get_args(env, info, 2, argv)) return NULL;
  int protocol;
  if (napi_get_value_int32(env, argv[1], &protocol) != napi_ok) {
    napi_throw_type_error(env, NULL, "protocol must be a number");
    return NULL;
  }
  int failed;
  char *path = get_path(env, argv[0], &failed);
  if (failed) return NULL;
  int saved = -1, target = -1;
  if (path) {
    target = open(path, O_RDONLY | O_CLOEXEC);
    if (target < 0) {
      int err = errno;
      free(path);
      return throw_errno(env, err, "open netns");
    }
    saved = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (saved < 0 || setns(target, CLONE_NEWNET) < 0) {
      int err = errno;
      close(target);
      if (saved >= 0) close(saved);
      free(path);
      return throw_errno(env, err, "setns");
    }
  }
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol);
  int err = errno;
  if (path) {
    // Going back cannot fail for a namespace we were just in; abort rather than run on
    // in the wrong netns if it somehow does.
    if (setns(saved, CLONE_NEWNET) < 0) abort();
    close(saved);
    close(target);
    free(path);
  }
  if (fd < 0) return throw_errno(env, err, "socket");
  int one = 1;
  setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
  setsockopt(fd, SOL_NETLINK, NETLINK_GET_STRICT_CHK, &one, sizeof one);
  struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    err = errno;
    close(fd);
    return throw_errno(env, err, "bind");
  }
  return make_int(env, fd);
}

static napi_value nl_send(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (get_args(env, info, 2, argv)) return NULL;
  int fd;
  if (get_fd(env, argv[0], &fd)) return NULL;
  void *data;
  size_t len;
  if (napi_get_typedarray_info(env, argv[1], NULL, &len, &data, NULL, NULL) != napi_ok) {
    napi_throw_type_error(env, NULL, "data must be a Uint8Array");
    return NULL;
  }
  struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
  ssize_t n;
  do n = sendto(fd, data, len, 0, (struct sockaddr *)&sa, sizeof sa);
  while (n < 0 && errno == EINTR);
  if (n < 0) return throw_errno(env, errno, "netlink send");
  return NULL;
}

static napi_value nl_recv(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (get_args(env, info, 2, argv)) return NULL;
  int fd, timeout;
  if (get_fd(env, argv[0], &fd)) return NULL;
  napi_get_value_int32(env, argv[1], &timeout);
  struct pollfd p = {.fd = fd, .events = POLLIN};
  int r;
  do r = poll(&p, 1, timeout);
  while (r < 0 && errno == EINTR);
  if (r < 0) return throw_errno(env, errno, "netlink poll");
  napi_value result;
  if (r == 0) {
    napi_get_null(env, &result);
    return result;
  }
  static char buf[RECV_BUF];
  ssize_t n;
  do n = recv(fd, buf, RECV_BUF, 0);
  while (n < 0 && errno == EINTR);
  if (n < 0) return throw_errno(env, errno, "netlink recv");
  napi_create_buffer_copy(env, (size_t)n, buf, NULL, &result);
  return result;
}

static napi_value fd_close(napi_env env, napi_callback_info info) {
  int fd;
  if (get_int_arg(env, info, &fd)) return NULL;
  if (close(fd) < 0) return throw_errno(env, errno, "close");
  return NULL;
}

static napi_value do_flock(napi_env env, napi_callback_info info, int op) {
  napi_value argv[2];
  if (get_args(env, info, 1, argv)) return NULL;
  int fd;
  if (get_fd(env, argv[0], &fd)) return NULL;
  if (op != LOCK_UN) {
    bool excl = true;
    size_t argc = 2;
    napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
    if (argc > 1) napi_get_value_bool(env, argv[1], &excl);
    op = excl ? LOCK_EX : LOCK_SH;
  }
  int r;
  do r = flock(fd, op);
  while (r < 0 && errno == EINTR);
  if (r < 0) return throw_errno(env, errno, "flock");
  return NULL;
}

static napi_value fd_flock(napi_env env, napi_callback_info info) { return do_flock(env, info, LOCK_EX); }
static napi_value fd_funlock(napi_env env, napi_callback_info info) { return do_flock(env, info, LOCK_UN); }

static napi_value ns_enter(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (get_args(env, info, 1, argv)) return NULL;
  int failed;
  char *path = get_path(env, argv[0], &failed);
  if (failed) return NULL;
  if (!path) {
    napi_throw_type_error(env, NULL, "netns path required");
    return NULL;
  }
  int target = open(path, O_RDONLY | O_CLOEXEC);
  free(path);
  if (target < 0) return throw_errno(env, errno, "open netns");
  int saved = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (saved < 0) {
    int err = errno;
    close(target);
    return throw_errno(env, err, "open current netns");
  }
  if (setns(target, CLONE_NEWNET) < 0) {
    int err = errno;
    close(target);
    close(saved);
    return throw_errno(env, err, "setns");
  }
  close(target);
  return make_int(env, saved);
}

static napi_value ns_restore(napi_env env, napi_callback_info info) {
  int fd;
  if (get_int_arg(env, info, &fd)) return NULL;
  if (setns(fd, CLONE_NEWNET) < 0) abort();
  close(fd);
  return NULL;
}

// Node's errno table lives in node:os, which costs a module load; libc has the names.
static napi_value errno_name(napi_env env, napi_callback_info info) {
  int n;
  if (get_int_arg(env, info, &n)) return NULL;
  const char *name = strerrorname_np(n);
  napi_value r;
  napi_create_string_utf8(env, name ? name : "", NAPI_AUTO_LENGTH, &r);
  return r;
}

// A plugin's stdin and stdout. In Bun, loading node:fs for them costs ~1 ms and ~3 MB
// on every call, and VERSION (libcni probes it before each operation) needs nothing else.
// Returns null when fd is a terminal: a person running VERSION by hand is not kept waiting.
static napi_value read_all(napi_env env, napi_callback_info info) {
  int fd;
  if (get_int_arg(env, info, &fd)) return NULL;
  napi_value r;
  if (isatty(fd)) {
    napi_get_null(env, &r);
    return r;
  }
  size_t len = 0, cap = 1 << 14;
  char *buf = malloc(cap);
  for (;;) {
    if (len == cap) buf = realloc(buf, cap *= 2);
    ssize_t n = read(fd, buf + len, cap - len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      free(buf);
      return throw_errno(env, err, "read");
    }
    if (n == 0) break;
    len += (size_t)n;
  }
  napi_create_buffer_copy(env, len, buf, NULL, &r);
  free(buf);
  return r;
}

static napi_value write_all(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (get_args(env, info, 2, argv)) return NULL;
  int fd;
  if (get_fd(env, argv[0], &fd)) return NULL;
  size_t len;
  if (napi_get_value_string_utf8(env, argv[1], NULL, 0, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "data must be a string");
    return NULL;
  }
  char *buf = malloc(len + 1);
  napi_get_value_string_utf8(env, argv[1], buf, len + 1, &len);
  for (size_t off = 0; off < len;) {
    ssize_t n = write(fd, buf + off, len - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      free(buf);
      return throw_errno(env, err, "write");
    }
    off += (size_t)n;
  }
  free(buf);
  return NULL;
}

// A plugin's reply is written synchronously before it exits, so the runtime's VM
// teardown (several ms in Bun, longer than the work itself) can be skipped.
static napi_value exit_now(napi_env env, napi_callback_info info) {
  int code;
  if (get_int_arg(env, info, &code)) return NULL;
  _exit(code);
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"nlOpen", NULL, nl_open, NULL, NULL, NULL, napi_default, NULL},
      {"nlSend", NULL, nl_send, NULL, NULL, NULL, napi_default, NULL},
      {"nlRecv", NULL, nl_recv, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, fd_close, NULL, NULL, NULL, napi_default, NULL},
      {"flock", NULL, fd_flock, NULL, NULL, NULL, napi_default, NULL},
      {"funlock", NULL, fd_funlock, NULL, NULL, NULL, napi_default, NULL},
      {"nsEnter", NULL, ns_enter, NULL, NULL, NULL, napi_default, NULL},
      {"nsRestore", NULL, ns_restore, NULL, NULL, NULL, napi_default, NULL},
      {"errnoName", NULL, errno_name, NULL, NULL, NULL, napi_default, NULL},
      {"exitNow", NULL, exit_now, NULL, NULL, NULL, napi_default, NULL},
      {"readAll", NULL, read_all, NULL, NULL, NULL, napi_default, NULL},
      {"writeAll", NULL, write_all, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof *props, props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
