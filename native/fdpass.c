/*
 * fdpass: a UNIX stream socket that carries file descriptors beside its bytes
 * (SCM_RIGHTS), for effect-amp's descriptor-capable transport.
 *
 * Node's net.Socket reads and writes bytes only; the ancillary data that
 * carries descriptors is dropped on receive and cannot be attached on send.
 * This addon owns one socket descriptor per handle and does the two system
 * calls that matter, recvmsg and sendmsg, on Node's own event loop (uv_poll).
 * Everything else (buffers, queues, backpressure, which descriptor goes with
 * which bytes) is decided in JavaScript (src/node/internal/fdSocket.ts).
 *
 * Exports (all synchronous, all non-blocking):
 *   open(fd, onEvent)         -> handle: takes fd over (O_NONBLOCK, CLOEXEC);
 *                                onEvent(events) runs when fd is ready, with
 *                                1 readable, 2 writable (or both), or -errno
 *   poll(handle, events)      -> watches 1 readable, 2 writable, 3, or 0 none
 *   recv(handle, buf, fdsOut) -> bytes read into buf (0: end of input, -errno
 *                                on error, -EAGAIN when nothing waits);
 *                                fdsOut[0] = descriptors received, then them
 *   send(handle, chunks, offset, limit, fds)
 *                             -> bytes written from chunks (an array of
 *                                Buffers, the first from offset, at most
 *                                limit bytes when limit >= 0) with fds
 *                                (Int32Array or null) attached, or -errno
 *   shutdown(handle)          -> shutdown(SHUT_WR): our end of the stream
 *   close(handle)             -> stops polling and closes the socket
 *   dup(fd)                   -> a duplicate (close-on-exec), or -errno
 *   closeFd(fd)               -> close(2): 0 or -errno
 *   pipe()                    -> [readFd, writeFd] (close-on-exec), for tests
 *
 * Received descriptors come with MSG_CMSG_CLOEXEC, so a child process never
 * inherits them by accident. A truncated control message (MSG_CTRUNC: more
 * descriptors than the 253 a message can hold on Linux) is reported as
 * -EMSGSIZE: the descriptors it lost are gone, and the stream's ordinals with
 * them, so the connection cannot go on.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <node_api.h>
#include <uv.h>

/* SCM_MAX_FD on Linux: the most descriptors one message carries. */
#define MAX_FDS 253
#define MAX_IOV 64

typedef struct {
  uv_poll_t poll;
  napi_env env;
  napi_ref callback;
  napi_async_context async;
  int fd;
  int open;     /* the socket is ours and not closed */
  int polling;  /* uv_poll_start is in effect */
  int external; /* the JS object still refers to us */
} handle_t;

#define CHECK(call)                                                            \
  do {                                                                         \
    if ((call) != napi_ok) {                                                   \
      napi_throw_error(env, NULL, "fdpass: " #call " failed");                \
      return NULL;                                                             \
    }                                                                          \
  } while (0)

/* A call on a handle: its `n` arguments in `argv`, and `h`, the handle in argv[0] (the call
   returns, with a JS exception, when it is not one). */
#define HANDLE_ARGS(n)                                                         \
  size_t argc = (n);                                                           \
  napi_value argv[(n)];                                                        \
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));                 \
  handle_t *h = handle_of(env, argv[0]);                                       \
  if (h == NULL) return NULL

static napi_value number(napi_env env, double v) {
  napi_value out;
  napi_create_double(env, v, &out);
  return out;
}

static handle_t *handle_of(napi_env env, napi_value v) {
  handle_t *h = NULL;
  if (napi_get_value_external(env, v, (void **)&h) != napi_ok || h == NULL) {
    napi_throw_type_error(env, NULL, "fdpass: not a handle");
    return NULL;
  }
  return h;
}

static void on_closed(uv_handle_t *uvh) {
  handle_t *h = (handle_t *)uvh->data;
  if (h->fd >= 0) close(h->fd);
  h->fd = -1;
  if (!h->external) free(h);
  else h->polling = 0;
}

static void stop(handle_t *h) {
  if (!h->open) return;
  h->open = 0;
  if (h->callback != NULL) {
    napi_delete_reference(h->env, h->callback);
    h->callback = NULL;
  }
  if (h->async != NULL) {
    napi_async_destroy(h->env, h->async);
    h->async = NULL;
  }
  uv_poll_stop(&h->poll);
  h->polling = 0;
  /* The descriptor is closed once libuv has let go of the poll handle. */
  uv_close((uv_handle_t *)&h->poll, on_closed);
}

static void finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  handle_t *h = (handle_t *)data;
  h->external = 0;
  if (h->open) stop(h); /* frees in on_closed */
  else if (h->fd < 0) free(h);
  /* else: uv_close is pending and on_closed frees */
}

static void on_event(uv_poll_t *poll, int status, int events) {
  handle_t *h = (handle_t *)poll->data;
  if (!h->open || h->callback == NULL) return;
  napi_env env = h->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value cb, recv, arg, result;
  if (napi_get_reference_value(env, h->callback, &cb) == napi_ok && cb != NULL) {
    int code = status < 0 ? status : (events & (UV_READABLE | UV_WRITABLE | UV_DISCONNECT));
    if (status >= 0 && (events & UV_DISCONNECT)) code |= UV_READABLE; /* the end is read as a 0-byte recv */
    arg = number(env, code);
    napi_get_global(env, &recv); /* make_callback wants an object as the receiver */
    /* make_callback, so that process.nextTick and promise jobs run after it, as after any I/O callback. */
    napi_make_callback(env, h->async, recv, cb, 1, &arg, &result);
  }
  napi_close_handle_scope(env, scope);
}

static napi_value js_open(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], out, name;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  if (argc < 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, NULL, "fdpass.open: expected a descriptor and a callback");
    return NULL;
  }
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
    napi_throw_error(env, NULL, strerror(errno));
    return NULL;
  }
  uv_loop_t *loop;
  CHECK(napi_get_uv_event_loop(env, &loop));
  handle_t *h = calloc(1, sizeof(handle_t));
  if (h == NULL) {
    napi_throw_error(env, NULL, "fdpass.open: out of memory");
    return NULL;
  }
  h->env = env;
  h->fd = fd;
  int rc = uv_poll_init(loop, &h->poll, fd);
  if (rc < 0) {
    free(h);
    napi_throw_error(env, NULL, uv_strerror(rc));
    return NULL;
  }
  h->poll.data = h;
  h->open = 1;
  h->external = 1;
  CHECK(napi_create_reference(env, argv[1], 1, &h->callback));
  CHECK(napi_create_string_utf8(env, "effect-amp:fdpass", NAPI_AUTO_LENGTH, &name));
  CHECK(napi_async_init(env, NULL, name, &h->async));
  CHECK(napi_create_external(env, h, finalize, NULL, &out));
  return out;
}

static napi_value js_poll(napi_env env, napi_callback_info info) {
  HANDLE_ARGS(2);
  int32_t events = 0;
  napi_get_value_int32(env, argv[1], &events);
  if (!h->open) return number(env, -EBADF);
  int rc = 0;
  if (events == 0) {
    if (h->polling) rc = uv_poll_stop(&h->poll);
    h->polling = 0;
  } else {
    int e = ((events & 1) ? UV_READABLE | UV_DISCONNECT : 0) | ((events & 2) ? UV_WRITABLE : 0);
    rc = uv_poll_start(&h->poll, e, on_event);
    h->polling = rc == 0;
  }
  return number(env, rc);
}

static napi_value js_recv(napi_env env, napi_callback_info info) {
  HANDLE_ARGS(3);
  void *buf;
  size_t len;
  if (napi_get_buffer_info(env, argv[1], &buf, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "fdpass.recv: expected a Buffer");
    return NULL;
  }
  napi_typedarray_type type;
  size_t fdsLen;
  void *fdsData;
  napi_value ab;
  size_t off;
  if (napi_get_typedarray_info(env, argv[2], &type, &fdsLen, &fdsData, &ab, &off) != napi_ok ||
      type != napi_int32_array || fdsLen < MAX_FDS + 1) {
    napi_throw_type_error(env, NULL, "fdpass.recv: expected an Int32Array of 254");
    return NULL;
  }
  int32_t *fdsOut = (int32_t *)fdsData;
  fdsOut[0] = 0;
  if (!h->open) return number(env, -EBADF);

  union {
    char buf[CMSG_SPACE(sizeof(int) * MAX_FDS)];
    struct cmsghdr align;
  } control;
  struct iovec iov = {.iov_base = buf, .iov_len = len};
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.buf;
  msg.msg_controllen = sizeof control.buf;
  ssize_t n;
  do {
    n = recvmsg(h->fd, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return number(env, errno == EWOULDBLOCK ? -EAGAIN : -errno);
  int count = 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    int *fds = (int *)CMSG_DATA(c);
    for (size_t i = 0; i < k; i++) {
      if (count < MAX_FDS) fdsOut[1 + count++] = fds[i];
      else close(fds[i]);
    }
  }
  fdsOut[0] = count;
  if (msg.msg_flags & MSG_CTRUNC) return number(env, -EMSGSIZE); /* fdsOut still lists what arrived: the caller closes them */
  return number(env, (double)n);
}

static napi_value js_send(napi_env env, napi_callback_info info) {
  HANDLE_ARGS(5);
  if (!h->open) return number(env, -EBADF);
  uint32_t chunks = 0;
  if (napi_get_array_length(env, argv[1], &chunks) != napi_ok) {
    napi_throw_type_error(env, NULL, "fdpass.send: expected an array of Buffers");
    return NULL;
  }
  int64_t offset = 0, limit = -1;
  napi_get_value_int64(env, argv[2], &offset);
  napi_get_value_int64(env, argv[3], &limit);
  struct iovec iov[MAX_IOV];
  int iovcnt = 0;
  size_t total = 0;
  for (uint32_t i = 0; i < chunks && iovcnt < MAX_IOV; i++) {
    napi_value el;
    void *data;
    size_t len;
    if (napi_get_element(env, argv[1], i, &el) != napi_ok || napi_get_buffer_info(env, el, &data, &len) != napi_ok) {
      napi_throw_type_error(env, NULL, "fdpass.send: expected an array of Buffers");
      return NULL;
    }
    size_t skip = i == 0 ? (size_t)offset : 0;
    if (skip > len) skip = len;
    size_t take = len - skip;
    if (limit >= 0 && total + take > (size_t)limit) take = (size_t)limit - total;
    if (take == 0) {
      if (limit >= 0 && total >= (size_t)limit) break;
      continue;
    }
    iov[iovcnt].iov_base = (char *)data + skip;
    iov[iovcnt].iov_len = take;
    iovcnt++;
    total += take;
  }
  union {
    char buf[CMSG_SPACE(sizeof(int) * MAX_FDS)];
    struct cmsghdr align;
  } control;
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = iov;
  msg.msg_iovlen = iovcnt;
  napi_valuetype t;
  napi_typeof(env, argv[4], &t);
  if (t == napi_object) {
    napi_typedarray_type type;
    size_t n;
    void *data;
    napi_value ab;
    size_t off;
    if (napi_get_typedarray_info(env, argv[4], &type, &n, &data, &ab, &off) != napi_ok || type != napi_int32_array ||
        n > MAX_FDS) {
      napi_throw_type_error(env, NULL, "fdpass.send: fds must be an Int32Array of at most 253");
      return NULL;
    }
    if (n > 0) {
      if (total == 0) return number(env, -EINVAL); /* a descriptor needs at least one byte to ride on */
      memset(control.buf, 0, sizeof control.buf);
      msg.msg_control = control.buf;
      msg.msg_controllen = CMSG_SPACE(sizeof(int) * n);
      struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * n);
      memcpy(CMSG_DATA(c), data, sizeof(int) * n);
    }
  }
  ssize_t w;
  do {
    w = sendmsg(h->fd, &msg, MSG_NOSIGNAL);
  } while (w < 0 && errno == EINTR);
  if (w < 0) return number(env, errno == EWOULDBLOCK ? -EAGAIN : -errno);
  return number(env, (double)w);
}

static napi_value js_shutdown(napi_env env, napi_callback_info info) {
  HANDLE_ARGS(1);
  if (!h->open) return number(env, -EBADF);
  return number(env, shutdown(h->fd, SHUT_WR) < 0 ? -errno : 0);
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  HANDLE_ARGS(1);
  stop(h);
  return number(env, 0);
}

/* The descriptor number a call was given as its first argument, or -1 when it was not one. */
static int32_t fd_argument(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd = -1;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1) return -1;
  if (napi_get_value_int32(env, argv[0], &fd) != napi_ok) return -1;
  return fd;
}

static napi_value js_dup(napi_env env, napi_callback_info info) {
  int32_t fd = fd_argument(env, info);
  if (fd < 0) return number(env, -EBADF);
  int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  return number(env, d < 0 ? -errno : d);
}

static napi_value js_close_fd(napi_env env, napi_callback_info info) {
  int32_t fd = fd_argument(env, info);
  if (fd < 0) return number(env, -EBADF);
  return number(env, close(fd) < 0 ? -errno : 0);
}

static napi_value js_pipe(napi_env env, napi_callback_info info) {
  (void)info;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) < 0) {
    napi_throw_error(env, NULL, strerror(errno));
    return NULL;
  }
  napi_value out;
  CHECK(napi_create_array_with_length(env, 2, &out));
  napi_set_element(env, out, 0, number(env, fds[0]));
  napi_set_element(env, out, 1, number(env, fds[1]));
  return out;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"open", NULL, js_open, NULL, NULL, NULL, napi_enumerable, NULL},
    {"poll", NULL, js_poll, NULL, NULL, NULL, napi_enumerable, NULL},
    {"recv", NULL, js_recv, NULL, NULL, NULL, napi_enumerable, NULL},
    {"send", NULL, js_send, NULL, NULL, NULL, napi_enumerable, NULL},
    {"shutdown", NULL, js_shutdown, NULL, NULL, NULL, napi_enumerable, NULL},
    {"close", NULL, js_close, NULL, NULL, NULL, napi_enumerable, NULL},
    {"dup", NULL, js_dup, NULL, NULL, NULL, napi_enumerable, NULL},
    {"closeFd", NULL, js_close_fd, NULL, NULL, NULL, napi_enumerable, NULL},
    {"pipe", NULL, js_pipe, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
