from recperf.cli import main

raise SystemExit(main())
