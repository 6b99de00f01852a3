from gwms.cli.main import main

main()
