/* telldir/seekdir over a directory, as the Linux kernel NFS client serves them: every
 * position telldir gave, handed back to seekdir, must lead to the entry that followed it.
 * Built static on the host by tests/vm/ci.sh and run in the nfs-vm guest.
 *
 *   seekdir DIR     prints "entries N, positions checked M" and exits 0, or says what
 *                   differed and exits 1
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ENTRIES 100000

static char *names[MAX_ENTRIES];
static long positions[MAX_ENTRIES];

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: seekdir DIR\n");
        return 2;
    }
    DIR *d = opendir(argv[1]);
    if (!d) {
        perror(argv[1]);
        return 1;
    }
    int n = 0;
    for (;;) {
        long pos = telldir(d);
        struct dirent *e = readdir(d);
        if (!e)
            break;
        if (n == MAX_ENTRIES) {
            fprintf(stderr, "more than %d entries\n", MAX_ENTRIES);
            return 1;
        }
        if (pos < 0) {
            fprintf(stderr, "telldir gave %ld before entry %d\n", pos, n);
            return 1;
        }
        positions[n] = pos;
        names[n] = strdup(e->d_name);
        n++;
    }
    int checked = 0;
    for (int i = n - 1; i >= 0; i -= (i > 20 ? 37 : 1)) {
        seekdir(d, positions[i]);
        struct dirent *e = readdir(d);
        if (!e || strcmp(e->d_name, names[i]) != 0) {
            fprintf(stderr, "seekdir to the position of entry %d (%s) read %s\n", i, names[i],
                    e ? e->d_name : "nothing");
            return 1;
        }
        checked++;
    }
    closedir(d);
    printf("entries %d, positions checked %d\n", n, checked);
    return 0;
}
