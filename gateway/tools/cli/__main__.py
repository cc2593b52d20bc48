from gateway.tools.cli import main

main()
