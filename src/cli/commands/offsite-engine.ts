/**
 * The offsite engine (age-encryption, the S3 client's loader, packs, the files map) behind the
 * `baton offsite …` commands and `offsite.afterPull`, loaded by them at the point of use
 * (`await import('./offsite-engine.js')`): every other command, a `sink pull` without offsite above
 * all, starts without compiling it (age-encryption alone cost about 0.12 s of CPU per start).
 */
export { offsiteConfig, selectStreams } from '../../offsite/push.js';
export { runOffsitePushJob } from '../../offsite/run-push.js';
export { openOffsiteStore } from '../../offsite/open-store.js';
export { openRepoForRead } from '../../offsite/repo.js';
export { readIdentityFile } from '../../offsite/crypto.js';
export { listCommits, readCommit } from '../../offsite/read.js';
export { verifyOffsite } from '../../offsite/verify.js';
export { runOffsitePrune } from '../../offsite/prune.js';
export { runOffsiteRestore } from '../../offsite/restore.js';
export { offsiteStateDir } from '../../offsite/local-index.js';
export { pushAfterPull } from '../../offsite/after-pull.js';
