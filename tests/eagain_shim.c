/*
** eagain_shim.c: an LD_PRELOAD library for the specs. The first sendmsg
** on a datagram socket fails with EAGAIN, as when the kernel pushes back
** (a loopback UDP send never does), so that the specs reach the queued
** path of udp:send_to. Test code: its state is one static.
*/
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <sys/socket.h>
#include <sys/types.h>

ssize_t sendmsg(int fd, const struct msghdr *msg, int flags) {
  static int failed;
  ssize_t (*real)(int, const struct msghdr *, int);
  int type;
  socklen_t len = sizeof type;
  if (!failed && getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 &&
      type == SOCK_DGRAM) {
    failed = 1;
    errno = EAGAIN;
    return -1;
  }
  *(void **)&real = dlsym(RTLD_NEXT, "sendmsg");
  return real(fd, msg, flags);
}
