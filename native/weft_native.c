// weft_native: the few syscalls Node and Bun lack — setns, netlink sockets with
// synchronous I/O, flock, reading iptables-legacy's FORWARD chain — plus the file calls
// and the child-process spawn a plugin call needs, which in Bun would otherwise load
// node:fs and node:child_process (~1.3 ms and ~2.5 ms, several MB each, on every call).
// No libuv: the same addon loads in Node and in Bun. No libc symbol newer than glibc 2.17
// (what Bun itself needs), so the plugins run on older nodes than the machine that built
// them: file status through the statx syscall, errno names from our own table.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <node_api.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <dirent.h>
#include <limits.h>
#include <netinet/in.h>
#include <stddef.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
// After netinet/in.h, which the kernel headers then leave alone.
#include <linux/netfilter/xt_comment.h>
#include <linux/netfilter_ipv4/ip_tables.h>
#include <linux/netfilter_ipv6/ip6_tables.h>

#ifndef NETLINK_EXT_ACK
#define NETLINK_EXT_ACK 11
#endif
#ifndef NETLINK_GET_STRICT_CHK
#define NETLINK_GET_STRICT_CHK 12
#endif

#define RECV_BUF (1 << 16)

// Linux's errno names (glibc's strerrorname_np is 2.32+), one per number: aliases
// (EWOULDBLOCK, EDEADLOCK, ENOTSUP) named as glibc names them.
#define ERRNO_NAMES                                                                                  \
  X(EPERM) X(ENOENT) X(ESRCH) X(EINTR) X(EIO) X(ENXIO) X(E2BIG) X(ENOEXEC) X(EBADF) X(ECHILD)         \
  X(EAGAIN) X(ENOMEM) X(EACCES) X(EFAULT) X(ENOTBLK) X(EBUSY) X(EEXIST) X(EXDEV) X(ENODEV)            \
  X(ENOTDIR) X(EISDIR) X(EINVAL) X(ENFILE) X(EMFILE) X(ENOTTY) X(ETXTBSY) X(EFBIG) X(ENOSPC)          \
  X(ESPIPE) X(EROFS) X(EMLINK) X(EPIPE) X(EDOM) X(ERANGE) X(EDEADLK) X(ENAMETOOLONG) X(ENOLCK)        \
  X(ENOSYS) X(ENOTEMPTY) X(ELOOP) X(ENOMSG) X(EIDRM) X(ECHRNG) X(EL2NSYNC) X(EL3HLT) X(EL3RST)        \
  X(ELNRNG) X(EUNATCH) X(ENOCSI) X(EL2HLT) X(EBADE) X(EBADR) X(EXFULL) X(ENOANO) X(EBADRQC)           \
  X(EBADSLT) X(EBFONT) X(ENOSTR) X(ENODATA) X(ETIME) X(ENOSR) X(ENONET) X(ENOPKG) X(EREMOTE)          \
  X(ENOLINK) X(EADV) X(ESRMNT) X(ECOMM) X(EPROTO) X(EMULTIHOP) X(EDOTDOT) X(EBADMSG) X(EOVERFLOW)     \
  X(ENOTUNIQ) X(EBADFD) X(EREMCHG) X(ELIBACC) X(ELIBBAD) X(ELIBSCN) X(ELIBMAX) X(ELIBEXEC)            \
  X(EILSEQ) X(ERESTART) X(ESTRPIPE) X(EUSERS) X(ENOTSOCK) X(EDESTADDRREQ) X(EMSGSIZE) X(EPROTOTYPE)   \
  X(ENOPROTOOPT) X(EPROTONOSUPPORT) X(ESOCKTNOSUPPORT) X(EOPNOTSUPP) X(EPFNOSUPPORT)                   \
  X(EAFNOSUPPORT) X(EADDRINUSE) X(EADDRNOTAVAIL) X(ENETDOWN) X(ENETUNREACH) X(ENETRESET)              \
  X(ECONNABORTED) X(ECONNRESET) X(ENOBUFS) X(EISCONN) X(ENOTCONN) X(ESHUTDOWN) X(ETOOMANYREFS)       \
  X(ETIMEDOUT) X(ECONNREFUSED) X(EHOSTDOWN) X(EHOSTUNREACH) X(EALREADY) X(EINPROGRESS) X(ESTALE)      \
  X(EUCLEAN) X(ENOTNAM) X(ENAVAIL) X(EISNAM) X(EREMOTEIO) X(EDQUOT) X(ENOMEDIUM) X(EMEDIUMTYPE)       \
  X(ECANCELED) X(ENOKEY) X(EKEYEXPIRED) X(EKEYREVOKED) X(EKEYREJECTED) X(EOWNERDEAD)                  \
  X(ENOTRECOVERABLE) X(ERFKILL) X(EHWPOISON)

static const char *const errno_names[] = {
#define X(e) [e] = #e,
    ERRNO_NAMES
#undef X
};

// The errno's name ("ENOENT"), or NULL for a number Linux does not define.
static const char *errno_name_of(int err) {
  return err > 0 && (size_t)err < sizeof errno_names / sizeof *errno_names ? errno_names[err] : NULL;
}

// Throws an Error carrying code (errno name) and errno, like Node's own fs errors.
static napi_value throw_errno(napi_env env, int err, const char *what) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_value m, e, code, num;
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &m);
  napi_create_error(env, NULL, m, &e);
  const char *name = errno_name_of(err);
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

// An integer argument (fd, pid, mode, protocol, group, timeout).
static int get_int(napi_env env, napi_value v, int *out) {
  if (napi_get_value_int32(env, v, out) != napi_ok) {
    napi_throw_type_error(env, NULL, "expected a number");
    return -1;
  }
  return 0;
}

// The one integer argument of a call.
static int get_int_arg(napi_env env, napi_callback_info info, int *out) {
  napi_value arg;
  return get_args(env, info, 1, &arg) || get_int(env, arg, out) ? -1 : 0;
}

// Writes all of buf; 0, or the errno of the write that failed.
static int write_full(int fd, const char *buf, size_t len) {
  for (size_t off = 0; off < len;) {
    ssize_t n = write(fd, buf + off, len - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    off += (size_t)n;
  }
  return 0;
}

// Returns a malloc'd copy of a JS string argument, or NULL for null/undefined; its
// length in *out_len when out_len is not NULL (the text may hold NUL bytes). Without
// out_len the copy is used as a C string (a path, a name): a NUL inside is refused, as
// it would cut the string short (a config's "dataDir": "/a\u0000/b" must not mean /a).
static char *get_string(napi_env env, napi_value v, int *failed, size_t *out_len) {
  napi_valuetype t;
  *failed = 0;
  napi_typeof(env, v, &t);
  if (t == napi_null || t == napi_undefined) return NULL;
  size_t len;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "expected a string");
    *failed = 1;
    return NULL;
  }
  char *s = malloc(len + 1);
  if (!s) {
    napi_throw_error(env, "ENOMEM", "out of memory");
    *failed = 1;
    return NULL;
  }
  napi_get_value_string_utf8(env, v, s, len + 1, &len);
  if (out_len) {
    *out_len = len;
  } else if (strlen(s) != len) {
    free(s);
    napi_throw_type_error(env, NULL, "string contains a NUL byte");
    *failed = 1;
    return NULL;
  }
  return s;
}

// A required string argument as a malloc'd string; NULL (with a JS exception) otherwise.
static char *required_string(napi_env env, napi_value v, size_t *len) {
  int failed;
  char *s = get_string(env, v, &failed, len);
  if (!failed && !s) napi_throw_type_error(env, NULL, "expected a string");
  return s;
}

static napi_value make_int(napi_env env, int v) {
  napi_value r;
  napi_create_int32(env, v, &r);
  return r;
}

// Moves the calling thread into the netns at `path`. Returns an fd for the netns it was
// in (for leave_netns), or -1 with errno set and *step naming the call that failed.
static int enter_netns(const char *path, const char **step) {
  int target = open(path, O_RDONLY | O_CLOEXEC);
  if (target < 0) {
    *step = "open netns";
    return -1;
  }
  int saved = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (saved < 0 || setns(target, CLONE_NEWNET) < 0) {
    int err = errno;
    *step = saved < 0 ? "open current netns" : "setns";
    if (saved >= 0) close(saved);
    close(target);
    errno = err;
    return -1;
  }
  close(target);
  return saved;
}

// Going back cannot fail for a namespace we were just in; abort rather than run on in
// the wrong netns if it somehow does.
static void leave_netns(int saved) {
  if (setns(saved, CLONE_NEWNET) < 0) abort();
  close(saved);
}

// Opens a netlink socket; a socket stays in the netns it was created in, so entering
// the target netns only for the socket() call is enough.
static napi_value nl_open(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (get_args(env, info, 2, argv)) return NULL;
  int protocol;
  if (get_int(env, argv[1], &protocol)) return NULL;
  int failed;
  char *path = get_string(env, argv[0], &failed, NULL);
  if (failed) return NULL;
  int saved = -1;
  if (path) {
    const char *step;
    saved = enter_netns(path, &step);
    int err = errno;
    free(path);
    if (saved < 0) return throw_errno(env, err, step);
  }
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol);
  int err = errno;
  if (saved >= 0) leave_netns(saved);
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

static int send_to_kernel(int fd, const void *data, size_t len) {
  struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
  ssize_t n;
  do n = sendto(fd, data, len, 0, (struct sockaddr *)&sa, sizeof sa);
  while (n < 0 && errno == EINTR);
  return n < 0 ? -1 : 0;
}

// The (fd, data) arguments of a send: the socket and a Uint8Array datagram.
static int get_datagram(napi_env env, napi_callback_info info, int *fd, void **data, size_t *len) {
  napi_value argv[2];
  if (get_args(env, info, 2, argv) || get_int(env, argv[0], fd)) return -1;
  if (napi_get_typedarray_info(env, argv[1], NULL, len, data, NULL, NULL) != napi_ok) {
    napi_throw_type_error(env, NULL, "data must be a Uint8Array");
    return -1;
  }
  return 0;
}

static napi_value nl_send(napi_env env, napi_callback_info info) {
  int fd;
  void *data;
  size_t len;
  if (get_datagram(env, info, &fd, &data, &len)) return NULL;
  if (send_to_kernel(fd, data, len) < 0) return throw_errno(env, errno, "netlink send");
  return NULL;
}

#ifndef SYS_close_range
#define SYS_close_range 436
#endif

// Whether close_range(2) works here (Linux 5.9, and no seccomp profile refusing it): the
// child needs it, as closing every possible fd one by one would delay the send it waits
// for. Asked once per process, with a range holding no fd.
static bool close_range_works(void) {
  static int works = -1;
  if (works < 0) works = syscall(SYS_close_range, ~0U, ~0U, 0) == 0;
  return works;
}

// In a child that makes only syscalls: closes every fd but `a` and `b`.
static void close_all_but(int a, int b) {
  if (a > b) {
    int t = a;
    a = b, b = t;
  }
  syscall(SYS_close_range, b + 1, ~0U, 0);
  if (a > 0) syscall(SYS_close_range, 0, a - 1, 0);
  if (b > a + 1) syscall(SYS_close_range, a + 1, b - 1, 0);
}

// nlSendDetached(fd, data) -> statusFd: sends one datagram from a child process, so the
// caller goes on while the kernel works. The kernel runs a netlink request inside the
// sender's sendto, and some go on long after their effect is visible: a link delete waits
// for an RCU barrier (15-30 ms here) after the link is unlisted and its notification
// sent. The caller reads the outcome from the socket, which the child shares, and passes
// statusFd to nlRecv: the child writes the errno of a send the kernel refused outright
// (an oversized message, a security module's denial) to that pipe. -1 when there was no
// process to spare (a pids limit) or no close_range, and the caller sent the request itself.
// The child is a raw clone (fork without glibc's atfork handlers, whose locks another
// runtime thread may hold) and makes only syscalls. It starts with every signal blocked,
// so no handler of the runtime's runs in it, and keeps no fd but the socket and the pipe:
// an inherited stdout would keep the runtime waiting for EOF, an inherited lock fd the
// lock. Nobody waits for it: once the caller exits, init (or a subreaper) reaps it.
static napi_value nl_send_detached(napi_env env, napi_callback_info info) {
  int fd;
  void *data;
  size_t len;
  if (get_datagram(env, info, &fd, &data, &len)) return NULL;
  int status[2];
  long pid = -1;
  if (close_range_works() && pipe2(status, O_CLOEXEC) == 0) {
    // Raw: glibc's sigprocmask would leave its own two signals out.
    sigset_t all, old;
    memset(&all, 0xff, sizeof all);
    syscall(SYS_rt_sigprocmask, SIG_SETMASK, &all, &old, _NSIG / 8);
    pid = syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
    if (pid == 0) {
      close_all_but(fd, status[1]);
      if (send_to_kernel(fd, data, len) < 0) { // glibc's sendto: a bare syscall, no lock
        int err = errno;
        syscall(SYS_write, status[1], &err, sizeof err);
      }
      syscall(SYS_exit_group, 0);
    }
    syscall(SYS_rt_sigprocmask, SIG_SETMASK, &old, NULL, _NSIG / 8);
    close(status[1]);
    if (pid < 0) close(status[0]);
  }
  if (pid > 0) return make_int(env, status[0]);
  if (send_to_kernel(fd, data, len) < 0) return throw_errno(env, errno, "netlink send");
  return make_int(env, -1);
}

// Joins a netlink multicast group: the kernel then also sends the socket its
// notifications of that kind (RTNLGRP_LINK: links added, changed, deleted).
static napi_value nl_join(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (get_args(env, info, 2, argv)) return NULL;
  int fd, group;
  if (get_int(env, argv[0], &fd) || get_int(env, argv[1], &group)) return NULL;
  if (setsockopt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &group, sizeof group) < 0) return throw_errno(env, errno, "netlink join");
  return NULL;
}

// nlRecv(fd, timeoutMs[, sendStatus]) -> Buffer | null | errno: one datagram, or null when
// none came in time; with nlSendDetached's status pipe, the errno of a send the child
// could not make. The pipe's EOF only says the child is done; its replies are on `fd`.
static napi_value nl_recv(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  size_t argc = 3;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2) {
    napi_throw_type_error(env, NULL, "missing argument");
    return NULL;
  }
  int fd, timeout, status = -1;
  if (get_int(env, argv[0], &fd) || get_int(env, argv[1], &timeout) || (argc > 2 && get_int(env, argv[2], &status))) return NULL;
  struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = status, .events = POLLIN}};
  nfds_t n_fds = status >= 0 ? 2 : 1;
  napi_value result;
  for (;;) {
    int r;
    do r = poll(p, n_fds, timeout);
    while (r < 0 && errno == EINTR);
    if (r < 0) return throw_errno(env, errno, "netlink poll");
    if (r == 0) {
      napi_get_null(env, &result);
      return result;
    }
    if (n_fds == 2 && p[1].revents) {
      int err;
      if (read(status, &err, sizeof err) == (ssize_t)sizeof err) return make_int(env, err);
      n_fds = 1;
    }
    if (p[0].revents) break;
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

// statx(2) by the syscall: glibc's fstat and stat are 2.33+, its statx 2.28+.
static int statx_at(int dirfd, const char *path, int flags, unsigned mask, struct statx *st) {
  return (int)syscall(SYS_statx, dirfd, path, flags, mask, st);
}

// flock(fd) waits for an exclusive lock; tryFlock(fd) -> false while another descriptor holds it.
static napi_value do_flock(napi_env env, napi_callback_info info, int op) {
  int fd;
  if (get_int_arg(env, info, &fd)) return NULL;
  int r;
  do r = flock(fd, op);
  while (r < 0 && errno == EINTR);
  if (r < 0 && !((op & LOCK_NB) && errno == EWOULDBLOCK)) return throw_errno(env, errno, "flock");
  if (!(op & LOCK_NB)) return NULL;
  napi_value out;
  napi_get_boolean(env, r == 0, &out);
  return out;
}

static napi_value fd_flock(napi_env env, napi_callback_info info) { return do_flock(env, info, LOCK_EX); }
static napi_value fd_funlock(napi_env env, napi_callback_info info) { return do_flock(env, info, LOCK_UN); }
static napi_value fd_tryflock(napi_env env, napi_callback_info info) { return do_flock(env, info, LOCK_EX | LOCK_NB); }

// linked(fd): whether the file open on `fd` still has a name (a lock file its holder
// removed has none).
static napi_value fd_linked(napi_env env, napi_callback_info info) {
  int fd;
  if (get_int_arg(env, info, &fd)) return NULL;
  struct statx st;
  if (statx_at(fd, "", AT_EMPTY_PATH, STATX_NLINK, &st) < 0) return throw_errno(env, errno, "statx");
  napi_value out;
  napi_get_boolean(env, st.stx_nlink > 0, &out);
  return out;
}

static napi_value ns_enter(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (get_args(env, info, 1, argv)) return NULL;
  char *path = required_string(env, argv[0], NULL);
  if (!path) return NULL;
  const char *step;
  int saved = enter_netns(path, &step);
  int err = errno;
  free(path);
  if (saved < 0) return throw_errno(env, err, step);
  return make_int(env, saved);
}

static napi_value ns_restore(napi_env env, napi_callback_info info) {
  int fd;
  if (get_int_arg(env, info, &fd)) return NULL;
  leave_netns(fd);
  return NULL;
}

// Node's errno table lives in node:os, which costs a module load.
static napi_value errno_name(napi_env env, napi_callback_info info) {
  int n;
  if (get_int_arg(env, info, &n)) return NULL;
  const char *name = errno_name_of(n);
  napi_value r;
  napi_create_string_utf8(env, name ? name : "", NAPI_AUTO_LENGTH, &r);
  return r;
}

// One read(2) appended to a growing buffer: 1 when it read something (or was interrupted),
// 0 at EOF, -errno on an error or when the buffer cannot grow.
static int drain(int fd, char **buf, size_t *len, size_t *cap) {
  if (*len == *cap) {
    char *bigger = realloc(*buf, *cap * 2);
    if (!bigger) return -ENOMEM;
    *buf = bigger;
    *cap *= 2;
  }
  ssize_t n = read(fd, *buf + *len, *cap - *len);
  if (n < 0) return errno == EINTR ? 1 : -errno;
  *len += (size_t)n;
  return n > 0;
}

// A plugin's stdin and stdout. In Bun, loading node:fs for them costs ~1 ms and ~3 MB
// on every call, and VERSION (libcni probes it before each operation) needs nothing else.
// Returns null when fd is stdin on a terminal: a person running VERSION by hand is not kept
// waiting. (Only fd 0 is asked: files and sysctls are read here too, one syscall fewer.)
static napi_value read_all(napi_env env, napi_callback_info info) {
  int fd;
  if (get_int_arg(env, info, &fd)) return NULL;
  napi_value r;
  if (fd == 0 && isatty(fd)) {
    napi_get_null(env, &r);
    return r;
  }
  size_t len = 0, cap = 1 << 14;
  char *buf = malloc(cap);
  if (!buf) return throw_errno(env, ENOMEM, "read");
  int got;
  while ((got = drain(fd, &buf, &len, &cap)) > 0) {
  }
  if (got < 0) {
    free(buf);
    return throw_errno(env, -got, "read");
  }
  // A string, not a Buffer: every caller wants text (stdin, sysctls, small state files).
  napi_create_string_utf8(env, buf, len, &r);
  free(buf);
  return r;
}

static napi_value write_all(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (get_args(env, info, 2, argv)) return NULL;
  int fd;
  if (get_int(env, argv[0], &fd)) return NULL;
  size_t len;
  char *text = required_string(env, argv[1], &len);
  if (!text) return NULL;
  int err = write_full(fd, text, len);
  free(text);
  return err ? throw_errno(env, err, "write") : NULL;
}


// open(path, how, mode) -> fd, always O_CLOEXEC. `how` names the few ways weft opens
// files, so no O_* numbers (which differ between architectures) cross into JS:
// "r" read, "w" create or truncate, "wx" create exclusively, "c" read but create if
// missing (lock files), "d" a directory.
static napi_value fs_open(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (get_args(env, info, 3, argv)) return NULL;
  char how[4] = "";
  size_t len;
  int mode;
  if (napi_get_value_string_utf8(env, argv[1], how, sizeof how, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "open(path, how, mode)");
    return NULL;
  }
  if (get_int(env, argv[2], &mode)) return NULL;
  int flags = !strcmp(how, "r")    ? O_RDONLY
              : !strcmp(how, "w")  ? O_WRONLY | O_CREAT | O_TRUNC
              : !strcmp(how, "wx") ? O_WRONLY | O_CREAT | O_EXCL
              : !strcmp(how, "c")  ? O_RDONLY | O_CREAT
              : !strcmp(how, "d")  ? O_RDONLY | O_DIRECTORY
                                   : -1;
  if (flags < 0) {
    napi_throw_type_error(env, NULL, "open: unknown mode");
    return NULL;
  }
  char *path = required_string(env, argv[0], NULL);
  if (!path) return NULL;
  int fd = open(path, flags | O_CLOEXEC, (mode_t)mode);
  int err = errno;
  free(path);
  return fd < 0 ? throw_errno(env, err, "open") : make_int(env, fd);
}

// The calls that take a path and at most one integer: mkdir(path, mode), unlink(path),
// access(path, mode), rename(from, to) and realpath(path). access answers true or false
// rather than throwing: a PATH search asks it once per directory, and most say no.
enum path_op { OP_MKDIR, OP_UNLINK, OP_ACCESS, OP_RENAME, OP_REALPATH };

static napi_value path_call(napi_env env, napi_callback_info info, enum path_op op) {
  napi_value argv[2];
  size_t want = op == OP_UNLINK || op == OP_REALPATH ? 1 : 2;
  if (get_args(env, info, want, argv)) return NULL;
  int n = 0;
  char *other = NULL;
  if (op == OP_MKDIR || op == OP_ACCESS) {
    if (get_int(env, argv[1], &n)) return NULL;
  } else if (op == OP_RENAME && !(other = required_string(env, argv[1], NULL))) {
    return NULL;
  }
  char *path = required_string(env, argv[0], NULL);
  if (!path) {
    free(other);
    return NULL;
  }
  char resolved[PATH_MAX];
  int rc = op == OP_MKDIR    ? mkdir(path, (mode_t)n)
           : op == OP_UNLINK ? unlink(path)
           : op == OP_ACCESS ? access(path, n)
           : op == OP_RENAME ? rename(path, other)
                             : (realpath(path, resolved) ? 0 : -1);
  int err = errno;
  free(path);
  free(other);
  static const char *names[] = {"mkdir", "unlink", "access", "rename", "realpath"};
  napi_value r;
  if (op == OP_ACCESS) {
    napi_get_boolean(env, rc == 0, &r);
    return r;
  }
  if (rc < 0) return throw_errno(env, err, names[op]);
  if (op != OP_REALPATH) return NULL;
  napi_create_string_utf8(env, resolved, NAPI_AUTO_LENGTH, &r);
  return r;
}

static napi_value fs_mkdir(napi_env env, napi_callback_info info) { return path_call(env, info, OP_MKDIR); }
static napi_value fs_unlink(napi_env env, napi_callback_info info) { return path_call(env, info, OP_UNLINK); }
static napi_value fs_access(napi_env env, napi_callback_info info) { return path_call(env, info, OP_ACCESS); }
static napi_value fs_rename(napi_env env, napi_callback_info info) { return path_call(env, info, OP_RENAME); }
static napi_value fs_realpath(napi_env env, napi_callback_info info) { return path_call(env, info, OP_REALPATH); }

// statx(2) of a path, links followed.
static int statx_of(const char *path, struct statx *st) { return statx_at(AT_FDCWD, path, 0, STATX_INO, st); }

// sameFile(a, b): whether two paths name one file (st_dev and st_ino, links followed);
// false when either cannot be stat'ed.
static napi_value same_file(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (get_args(env, info, 2, argv)) return NULL;
  char *a = required_string(env, argv[0], NULL);
  if (!a) return NULL;
  char *b = required_string(env, argv[1], NULL);
  if (!b) {
    free(a);
    return NULL;
  }
  struct statx sa, sb;
  bool same = statx_of(a, &sa) == 0 && statx_of(b, &sb) == 0 && sa.stx_dev_major == sb.stx_dev_major &&
              sa.stx_dev_minor == sb.stx_dev_minor && sa.stx_ino == sb.stx_ino;
  free(a);
  free(b);
  napi_value r;
  napi_get_boolean(env, same, &r);
  return r;
}

// bpf(cmd, attr, pointers) -> the syscall's result. `attr` is the union bpf_attr the caller
// laid out; each [offset, Uint8Array] in `pointers` puts that array's address at `offset`
// first, so the attr layouts stay in TypeScript (shared/bpf/syscall.ts) and arrays the
// kernel fills (a verifier log, query results) come back to the caller as they are.
static napi_value bpf_call(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int cmd;
  if (get_args(env, info, 3, argv) || get_int(env, argv[0], &cmd)) return NULL;
  uint8_t *attr;
  size_t attr_len;
  uint32_t n;
  if (napi_get_typedarray_info(env, argv[1], NULL, &attr_len, (void **)&attr, NULL, NULL) != napi_ok ||
      napi_get_array_length(env, argv[2], &n) != napi_ok) {
    napi_throw_type_error(env, NULL, "expected (cmd, Uint8Array attr, [offset, Uint8Array][])");
    return NULL;
  }
  for (uint32_t i = 0; i < n; i++) {
    napi_value pair, v;
    int offset;
    void *data;
    size_t len;
    if (napi_get_element(env, argv[2], i, &pair) != napi_ok || napi_get_element(env, pair, 0, &v) != napi_ok ||
        get_int(env, v, &offset) || napi_get_element(env, pair, 1, &v) != napi_ok ||
        napi_get_typedarray_info(env, v, NULL, &len, &data, NULL, NULL) != napi_ok || offset < 0 ||
        (size_t)offset + 8 > attr_len) {
      napi_throw_type_error(env, NULL, "bad pointer entry");
      return NULL;
    }
    uint64_t address = (uintptr_t)data;
    memcpy(attr + offset, &address, sizeof address);
  }
  long r = syscall(SYS_bpf, cmd, attr, (unsigned int)attr_len);
  if (r < 0) return throw_errno(env, errno, "bpf");
  return make_int(env, (int)r);
}

// readdir(path) -> names, without "." and "..".
static napi_value fs_readdir(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (get_args(env, info, 1, argv)) return NULL;
  char *path = required_string(env, argv[0], NULL);
  if (!path) return NULL;
  DIR *d = opendir(path);
  int err = errno;
  free(path);
  if (!d) return throw_errno(env, err, "opendir");
  napi_value r;
  napi_create_array(env, &r);
  uint32_t i = 0;
  struct dirent *e;
  for (errno = 0; (e = readdir(d)); errno = 0) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    napi_value name;
    napi_create_string_utf8(env, e->d_name, NAPI_AUTO_LENGTH, &name);
    napi_set_element(env, r, i++, name);
  }
  err = errno;
  closedir(d);
  return err ? throw_errno(env, err, "readdir") : r;
}

// Copies a JS array of strings into a NULL-terminated, malloc'd argv/envp.
static char **get_strings(napi_env env, napi_value arr, const char *first) {
  uint32_t n = 0;
  if (napi_get_array_length(env, arr, &n) != napi_ok) {
    napi_throw_type_error(env, NULL, "expected an array of strings");
    return NULL;
  }
  size_t at = first ? 1 : 0;
  char **v = calloc(n + at + 1, sizeof *v);
  if (!v || (first && !(v[0] = strdup(first)))) {
    free(v);
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  for (uint32_t i = 0; i < n; i++) {
    napi_value e;
    int failed;
    napi_get_element(env, arr, i, &e);
    v[at + i] = get_string(env, e, &failed, NULL);
    if (failed || !v[at + i]) {
      for (size_t k = 0; k < at + i; k++) free(v[k]);
      free(v);
      if (!failed) napi_throw_type_error(env, NULL, "expected an array of strings");
      return NULL;
    }
  }
  return v;
}

static void free_strings(char **v) {
  if (!v) return;
  for (char **p = v; *p; p++) free(*p);
  free(v);
}

// spawn(file, args, input, env) -> [pid, stdoutFd, stderrFd]. Starts `file` (looked up
// on the caller's PATH when it has no slash) with `input` on its stdin, which is then
// closed, and `env` ("K=V" strings) as its environment. The stdin pipe is sized to hold
// all of `input` (up to fs.pipe-max-size, 1 MiB by default), so writing it never waits
// for the child, which may be writing its own output meanwhile. The child gets default
// signal handling and an empty signal mask (Node and Bun ignore SIGPIPE, and exec keeps
// ignored signals ignored). reap() collects it, so the caller can work while it runs.
static napi_value spawn_child(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (get_args(env, info, 4, argv)) return NULL;
  char *file = required_string(env, argv[0], NULL);
  char **args = file ? get_strings(env, argv[1], file) : NULL;
  size_t len = 0;
  char *input = args ? required_string(env, argv[2], &len) : NULL;
  char **envp = input ? get_strings(env, argv[3], NULL) : NULL;
  if (!envp) {
    free(file), free_strings(args), free(input);
    return NULL;
  }
  int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
  int rc = 0;
  pid_t pid = -1;
  if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC)) rc = errno;
  if (!rc) {
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t all, none;
    sigfillset(&all);
    sigemptyset(&none);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, err[1], 2);
    posix_spawnattr_init(&attr);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    rc = posix_spawnp(&pid, file, &fa, &attr, args, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
  }
  const char *what = rc ? (in[0] < 0 || out[0] < 0 || err[0] < 0 ? "pipe" : file) : NULL;
  char whatBuf[256];
  if (what) snprintf(whatBuf, sizeof whatBuf, "spawn %s", what);
  for (int i = 0; i < 2; i++) {
    if (in[i] >= 0 && (rc || i == 0)) close(in[i]);
    if (out[i] >= 0 && (rc || i == 1)) close(out[i]);
    if (err[i] >= 0 && (rc || i == 1)) close(err[i]);
  }
  free(file), free_strings(args), free_strings(envp);
  if (rc) {
    free(input);
    return throw_errno(env, rc, whatBuf);
  }
  // The child may exit without reading: its stdin is then a broken pipe, not a signal.
  sigset_t pipe_set, old;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  sigprocmask(SIG_BLOCK, &pipe_set, &old); // per thread, as pthread_sigmask (2.32+ in libc)
  // The syscall: glibc 2.28+ links fcntl to fcntl64.
  if (len > 65536) syscall(SYS_fcntl, in[1], F_SETPIPE_SZ, (int)(len < (1 << 20) ? len : (1 << 20)));
  write_full(in[1], input, len); // EPIPE: it exited without reading; reap() reports how
  close(in[1]);
  struct timespec zero = {0, 0};
  while (sigtimedwait(&pipe_set, NULL, &zero) > 0) {
  }
  sigprocmask(SIG_SETMASK, &old, NULL);
  free(input);
  napi_value r;
  napi_create_array_with_length(env, 3, &r);
  napi_set_element(env, r, 0, make_int(env, pid));
  napi_set_element(env, r, 1, make_int(env, out[0]));
  napi_set_element(env, r, 2, make_int(env, err[0]));
  return r;
}

// reap(pid, stdoutFd, stderrFd) -> [status|null, signal|null, stdout, stderr]: reads both
// outputs to EOF, closes them, and waits for the child to exit.
static napi_value reap_child(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (get_args(env, info, 3, argv)) return NULL;
  int pid, fds[2];
  if (get_int(env, argv[0], &pid) || get_int(env, argv[1], &fds[0]) || get_int(env, argv[2], &fds[1])) return NULL;
  char *bufs[2] = {malloc(4096), malloc(4096)};
  size_t lens[2] = {0, 0}, caps[2] = {4096, 4096};
  // Without buffers, read nothing: the child then sees closed pipes and still exits.
  bool open_[2] = {bufs[0] && bufs[1], bufs[0] && bufs[1]};
  for (int i = 0; i < 2; i++) {
    if (!open_[i]) close(fds[i]);
  }
  while (open_[0] || open_[1]) {
    struct pollfd p[2] = {{open_[0] ? fds[0] : -1, POLLIN, 0}, {open_[1] ? fds[1] : -1, POLLIN, 0}};
    if (poll(p, 2, -1) < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; i++) {
      // Closed as soon as we stop reading it, so a child still writing there cannot block.
      if (open_[i] && p[i].revents && drain(fds[i], &bufs[i], &lens[i], &caps[i]) <= 0) {
        close(fds[i]);
        open_[i] = false;
      }
    }
  }
  for (int i = 0; i < 2; i++) {
    if (open_[i]) close(fds[i]);
  }
  int st = 0;
  while (waitpid(pid, &st, 0) < 0) {
    if (errno == EINTR) continue;
    int e = errno;
    free(bufs[0]), free(bufs[1]);
    return throw_errno(env, e, "waitpid");
  }
  napi_value r, v;
  napi_create_array_with_length(env, 4, &r);
  if (WIFEXITED(st)) v = make_int(env, WEXITSTATUS(st));
  else napi_get_null(env, &v);
  napi_set_element(env, r, 0, v);
  if (WIFSIGNALED(st)) v = make_int(env, WTERMSIG(st));
  else napi_get_null(env, &v);
  napi_set_element(env, r, 1, v);
  for (int i = 0; i < 2; i++) {
    napi_create_string_utf8(env, bufs[i], lens[i], &v);
    napi_set_element(env, r, 2 + i, v);
    free(bufs[i]);
  }
  return r;
}

// iptables-legacy keeps a table as one blob of rules (entries) per netns, read with two
// getsockopt calls on a raw socket. An entry's header differs by family; its matches and
// target that follow do not.
struct legacy_family {
  int domain, level, get_info, get_entries;
  size_t entry_size, target_offset_at, next_offset_at, entries_at;
};
static const struct legacy_family LEGACY_IPV4 = {
    AF_INET, IPPROTO_IP, IPT_SO_GET_INFO, IPT_SO_GET_ENTRIES, sizeof(struct ipt_entry),
    offsetof(struct ipt_entry, target_offset), offsetof(struct ipt_entry, next_offset),
    offsetof(struct ipt_get_entries, entrytable)};
static const struct legacy_family LEGACY_IPV6 = {
    AF_INET6, IPPROTO_IPV6, IP6T_SO_GET_INFO, IP6T_SO_GET_ENTRIES, sizeof(struct ip6t_entry),
    offsetof(struct ip6t_entry, target_offset), offsetof(struct ip6t_entry, next_offset),
    offsetof(struct ip6t_get_entries, entrytable)};
// One info struct serves both families.
_Static_assert(sizeof(struct ipt_getinfo) == sizeof(struct ip6t_getinfo), "getinfo layouts differ");

static uint16_t u16_at(const char *p) {
  uint16_t v;
  memcpy(&v, p, sizeof v);
  return v;
}

// Reads the table's info and rules into *gi and *blob (the caller frees it). The info is
// read again after the rules: the kernel refuses a read whose size changed meanwhile
// (EAGAIN), but a change of the same size would pair the rules with stale offsets, so both
// are read again then. Returns 1 when read, 0 when there is no table or no FORWARD chain,
// -1 with a JS exception pending.
static int read_legacy_table(napi_env env, int fd, const struct legacy_family *fam, struct ipt_getinfo *gi, char **blob) {
  for (int attempt = 0; attempt < 5; attempt++) {
    memset(gi, 0, sizeof *gi);
    strcpy(gi->name, "filter");
    socklen_t len = sizeof *gi;
    if (getsockopt(fd, fam->level, fam->get_info, gi, &len) < 0) {
      if (errno == ENOENT) return 0;
      throw_errno(env, errno, "getsockopt(SO_GET_INFO)");
      return -1;
    }
    if (!(gi->valid_hooks & (1 << NF_INET_FORWARD))) return 0;
    free(*blob);
    len = fam->entries_at + gi->size;
    *blob = calloc(1, len);
    if (!*blob) {
      napi_throw_error(env, "ENOMEM", "out of memory");
      return -1;
    }
    memcpy(*blob, gi->name, sizeof gi->name);
    memcpy(*blob + sizeof gi->name, &gi->size, sizeof gi->size);
    if (getsockopt(fd, fam->level, fam->get_entries, *blob, &len) < 0) {
      if (errno == EAGAIN) continue;
      throw_errno(env, errno, "getsockopt(SO_GET_ENTRIES)");
      return -1;
    }
    struct ipt_getinfo again = {0};
    strcpy(again.name, "filter");
    len = sizeof again;
    if (getsockopt(fd, fam->level, fam->get_info, &again, &len) == 0 && memcmp(&again, gi, sizeof again) == 0) return 1;
  }
  napi_throw_error(env, NULL, "iptables-legacy filter table: it kept changing while read");
  return -1;
}

// The entry at `off` within `size` bytes of rules, if its offsets stay inside it: its
// length (next_offset) and where its target starts (target_offset); 0 when malformed.
static size_t legacy_entry(const struct legacy_family *fam, const char *entries, size_t off, size_t size, size_t target_size, uint16_t *target_offset) {
  if (off + fam->entry_size > size) return 0;
  uint16_t next = u16_at(entries + off + fam->next_offset_at);
  *target_offset = u16_at(entries + off + fam->target_offset_at);
  if (*target_offset < fam->entry_size || *target_offset + target_size > next || off + next > size) return 0;
  return next;
}

// Whether the entry at `e` has a comment match saying `comment`; its matches lie between
// the entry's header and its target.
static bool has_comment(const struct legacy_family *fam, const char *e, uint16_t target_offset, const char *comment) {
  for (size_t off = fam->entry_size; off + sizeof(struct xt_entry_match) <= target_offset;) {
    const struct xt_entry_match *m = (const struct xt_entry_match *)(e + off);
    if (m->u.match_size < sizeof *m || off + m->u.match_size > target_offset) return false;
    if (strcmp(m->u.user.name, "comment") == 0 && m->u.match_size >= sizeof *m + sizeof(struct xt_comment_info) &&
        strncmp(((const struct xt_comment_info *)m->data)->comment, comment, XT_MAX_COMMENT_LEN) == 0)
      return true;
    off += m->u.match_size;
  }
  return false;
}

// legacyForward(family, comment): iptables-legacy's filter FORWARD chain in the caller's
// netns, as [whether its policy drops, rules with that comment], or null when the table
// has no FORWARD chain or is gone. What `iptables-legacy -S FORWARD` would tell, without
// a process.
static napi_value legacy_forward(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (get_args(env, info, 2, argv)) return NULL;
  int family;
  if (get_int(env, argv[0], &family)) return NULL;
  if (family != 4 && family != 6) {
    napi_throw_type_error(env, NULL, "family must be 4 or 6");
    return NULL;
  }
  char *comment = required_string(env, argv[1], NULL);
  if (!comment) return NULL;
  const struct legacy_family *fam = family == 6 ? &LEGACY_IPV6 : &LEGACY_IPV4;
  napi_value result = NULL;
  char *blob = NULL;
  int fd = socket(fam->domain, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
  if (fd < 0) {
    throw_errno(env, errno, "socket");
    goto out;
  }
  struct ipt_getinfo gi;
  int got = read_legacy_table(env, fd, fam, &gi, &blob);
  if (got <= 0) {
    if (got == 0) napi_get_null(env, &result);
    goto out;
  }
  const char *entries = blob + fam->entries_at;
  size_t end = gi.underflow[NF_INET_FORWARD];
  if (end > gi.size) {
    napi_throw_error(env, NULL, "iptables-legacy filter table: malformed FORWARD policy");
    goto out;
  }
  int matching = 0;
  uint16_t target_offset;
  for (size_t off = gi.hook_entry[NF_INET_FORWARD]; off < end;) {
    size_t next = legacy_entry(fam, entries, off, end, sizeof(struct xt_entry_target), &target_offset);
    if (!next) {
      napi_throw_error(env, NULL, "iptables-legacy filter table: malformed FORWARD rule");
      goto out;
    }
    if (has_comment(fam, entries + off, target_offset, comment)) matching++;
    off += next;
  }
  // The chain's policy is its last entry, a standard target (empty name) holding the
  // verdict: -NF_DROP - 1 for DROP, -NF_ACCEPT - 1 for ACCEPT.
  const struct xt_standard_target *t;
  if (!legacy_entry(fam, entries, end, gi.size, sizeof *t, &target_offset) ||
      (t = (const struct xt_standard_target *)(entries + end + target_offset))->target.u.user.name[0] != '\0') {
    napi_throw_error(env, NULL, "iptables-legacy filter table: malformed FORWARD policy");
    goto out;
  }
  int verdict;
  memcpy(&verdict, &t->verdict, sizeof verdict);
  napi_value drops;
  napi_get_boolean(env, verdict == -NF_DROP - 1, &drops);
  napi_create_array_with_length(env, 2, &result);
  napi_set_element(env, result, 0, drops);
  napi_set_element(env, result, 1, make_int(env, matching));
out:
  if (fd >= 0) close(fd);
  free(blob);
  free(comment);
  return result;
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
      {"nlSendDetached", NULL, nl_send_detached, NULL, NULL, NULL, napi_default, NULL},
      {"nlJoin", NULL, nl_join, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, fd_close, NULL, NULL, NULL, napi_default, NULL},
      {"flock", NULL, fd_flock, NULL, NULL, NULL, napi_default, NULL},
      {"funlock", NULL, fd_funlock, NULL, NULL, NULL, napi_default, NULL},
      {"tryFlock", NULL, fd_tryflock, NULL, NULL, NULL, napi_default, NULL},
      {"linked", NULL, fd_linked, NULL, NULL, NULL, napi_default, NULL},
      {"nsEnter", NULL, ns_enter, NULL, NULL, NULL, napi_default, NULL},
      {"nsRestore", NULL, ns_restore, NULL, NULL, NULL, napi_default, NULL},
      {"errnoName", NULL, errno_name, NULL, NULL, NULL, napi_default, NULL},
      {"exitNow", NULL, exit_now, NULL, NULL, NULL, napi_default, NULL},
      {"readAll", NULL, read_all, NULL, NULL, NULL, napi_default, NULL},
      {"writeAll", NULL, write_all, NULL, NULL, NULL, napi_default, NULL},
      {"spawn", NULL, spawn_child, NULL, NULL, NULL, napi_default, NULL},
      {"open", NULL, fs_open, NULL, NULL, NULL, napi_default, NULL},
      {"mkdir", NULL, fs_mkdir, NULL, NULL, NULL, napi_default, NULL},
      {"unlink", NULL, fs_unlink, NULL, NULL, NULL, napi_default, NULL},
      {"access", NULL, fs_access, NULL, NULL, NULL, napi_default, NULL},
      {"rename", NULL, fs_rename, NULL, NULL, NULL, napi_default, NULL},
      {"realpath", NULL, fs_realpath, NULL, NULL, NULL, napi_default, NULL},
      {"readdir", NULL, fs_readdir, NULL, NULL, NULL, napi_default, NULL},
      {"sameFile", NULL, same_file, NULL, NULL, NULL, napi_default, NULL},
      {"reap", NULL, reap_child, NULL, NULL, NULL, napi_default, NULL},
      {"legacyForward", NULL, legacy_forward, NULL, NULL, NULL, napi_default, NULL},
      {"bpf", NULL, bpf_call, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof *props, props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
