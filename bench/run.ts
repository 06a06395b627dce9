/** `npm run bench`: runs every benchmark and rewrites bench/RESULTS.md. */
console.log("no benchmarks yet");
