"""Gemini Batch Mode, client side: the pending requests of a run packed into batch jobs and seen through.

    chunks     pending RequestRecords -> chunk JSONL files (bounded by requests and bytes), ids files
    ledger     the durable, append-only record of every chunk's phase (ledger.jsonl)
    exchange   one HTTP exchange with the batch API, failures classified like synchronous replies
    keys       the run's keys: which key a new chunk is sent with, and the one every later call for it uses
    files      Files API: resumable upload of a chunk file, streamed download of a results file
    batches    batchGenerateContent (file input), get, list, cancel; a batch's state
    reconcile  after a crash between "creating" and "created": adopt the batch by display name
    collect    a results file, line by line -> (request_id, ProviderReply) pairs and a summary
    advance    one pass over every chunk: submit, poll, collect, return to pending
    fallback   batches given up on (timeout, deadline): cancelled, collected as far as they got, returned
    run        a batch run: chunks planned within the budget, passes until done or the deadline

Imports point one way: run uses advance and fallback, which use the others; chunks, ledger and collect know no HTTP.
"""
