/** The demo's loopback sshd, shared with the end-to-end tests. */
export * from '../../src/demo/sshd.js';
