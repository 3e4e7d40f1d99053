/* Writes a file so that its pages reach the NFS server as UNSTABLE WRITEs and are not yet
 * committed, prints a marker (the host then SIGKILLs and restarts the client daemon, which
 * loses whatever it held in memory), waits, then fsyncs: the COMMIT finds a new write
 * verifier and the kernel must send every uncommitted page again. Built static on the host
 * by tests/vm/ci.sh and run in the nfs-vm guest.
 *
 *   unstable SOURCE DEST MARKER   copies SOURCE to DEST that way; exits 0 once the fsync
 *                                 and close succeeded, 1 with a message otherwise
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: unstable SOURCE DEST MARKER\n");
        return 2;
    }
    int in = open(argv[1], O_RDONLY);
    int out = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (in < 0 || out < 0) {
        perror("open");
        return 1;
    }
    static char buf[1 << 20];
    for (;;) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n < 0) {
            perror("read");
            return 1;
        }
        if (n == 0) {
            break;
        }
        for (ssize_t at = 0; at < n;) {
            ssize_t w = write(out, buf + at, (size_t)(n - at));
            if (w < 0) {
                perror("write");
                return 1;
            }
            at += w;
        }
    }
    /* WRITEs sent and answered (UNSTABLE: many pages), no COMMIT: sync_file_range never
     * commits, and the flusher leaves a freshly dirtied inode alone for half a minute. */
    if (sync_file_range(out, 0, 0, SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                                       SYNC_FILE_RANGE_WAIT_AFTER) != 0) {
        perror("sync_file_range");
        return 1;
    }
    printf("%s\n", argv[3]);
    fflush(stdout);
    sleep(2);
    if (fsync(out) != 0) {
        perror("fsync");
        return 1;
    }
    if (close(out) != 0) {
        perror("close");
        return 1;
    }
    return 0;
}
