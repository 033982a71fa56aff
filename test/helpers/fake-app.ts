/** The demo's sample app server, shared with the end-to-end tests. */
export * from '../../src/demo/sample-app.js';
