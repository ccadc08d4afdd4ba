"""Review what came back: the HTML report (`report`), its automatic checks (`checks`), thumbnails
(`thumbs`) and the marks file a reviewer saves from it (`marks`), which `batchrun redo` reads."""
