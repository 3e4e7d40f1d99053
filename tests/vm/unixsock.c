/* A UNIX domain socket bound at a path in the mount: a listener, a client connecting to
 * the same path, one message through. Built static on the host by tests/vm/ci.sh and run
 * in the nfs-vm guest.
 *
 *   unixsock PATH   prints "bound and passed a message" and exits 0, or says what failed
 */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int fail(const char *what) {
    perror(what);
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 2 || strlen(argv[1]) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        fprintf(stderr, "usage: unixsock PATH (shorter than 108 bytes)\n");
        return 2;
    }
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    strcpy(addr.sun_path, argv[1]);
    int server = socket(AF_UNIX, SOCK_STREAM, 0);
    if (server < 0) return fail("socket");
    if (bind(server, (struct sockaddr *)&addr, sizeof addr) != 0) return fail("bind");
    if (listen(server, 1) != 0) return fail("listen");
    int client = socket(AF_UNIX, SOCK_STREAM, 0);
    if (client < 0) return fail("socket");
    if (connect(client, (struct sockaddr *)&addr, sizeof addr) != 0) return fail("connect");
    int conn = accept(server, NULL, NULL);
    if (conn < 0) return fail("accept");
    if (write(client, "hello", 5) != 5) return fail("write");
    char buf[8] = {0};
    if (read(conn, buf, sizeof buf) != 5 || memcmp(buf, "hello", 5) != 0) {
        fprintf(stderr, "read back '%s'\n", buf);
        return 1;
    }
    printf("bound and passed a message\n");
    return 0;
}
