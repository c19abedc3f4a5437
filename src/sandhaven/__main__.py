from sandhaven.cli.main import main

raise SystemExit(main())
