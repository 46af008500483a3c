from artfsd.main import main

main()
